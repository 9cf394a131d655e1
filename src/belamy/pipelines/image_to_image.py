"""`ImageToImagePipeline`: a trained image-to-image generator (pix2pix, CycleGAN, SRGAN, inpainting), rebuilt from
`config.json` + `model.safetensors`: `translate`, `upscale` or `inpaint`, on PIL images or tensors.

Images go in as PIL images (any mode: alpha is composited onto white, as for training data) or float tensors in
[-1, 1] ([C, H, W] or [B, C, H, W]); what comes out has the same form. The networks are fully convolutional, so any
size their strides allow works; the error for another size says which sizes fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from belamy.data.base import DataInfo
from belamy.utils.images import to_pil

ImageLike = Image.Image | Tensor


class ImageToImagePipeline:
    def __init__(self, generator: nn.Module, config: dict[str, Any], device: str | torch.device = "cpu") -> None:
        self.generator = generator.eval().requires_grad_(False).to(device)
        self.config = config
        self.device = torch.device(device)
        self.task: str = config["task"]
        self.recipe: str = config["recipe"]
        self.options: dict[str, Any] = config.get("options", {})
        self.data = DataInfo.from_json(config["data"])
        self.resolution = self.data.shape[1]

    # --- the three tasks ---------------------------------------------------------------------------------------

    def translate(self, image: ImageLike, direction: str | None = None, resize: bool = False) -> ImageLike:
        """Image-to-image translation. `direction`: "AtoB" or "BtoA" for CycleGAN models (default AtoB); a pix2pix
        model maps the direction it was trained in. `resize`: scale the input to the training resolution first
        (otherwise its size must fit the network's strides)."""
        self._require("translate")
        reverse = self._reverse(direction)
        channels = self._input_channels(reverse)
        x, as_pil = self._tensor(image, channels)
        if resize:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bicubic", antialias=True,
                              align_corners=False).clamp(-1, 1)
        self._check_size(x, "translate")
        with torch.no_grad():
            args = {"reverse": True} if reverse else {}
            out = self.generator(self._z(x), x.to(self.device), **args).float().cpu()
        return self._like(out, as_pil)

    def upscale(self, image: ImageLike, tile: int = 128, overlap: int = 16) -> ImageLike:
        """Super-resolution by the model's scale. Large images are processed in `tile` x `tile` tiles (input
        pixels) overlapping by `overlap`, blended so that no seams show: memory stays bounded by one tile."""
        from belamy.utils.tiles import apply_tiled

        self._require("upscale")
        x, as_pil = self._tensor(image, self.data.shape[0])
        scale = int(self.options.get("scale", self.generator.scale))

        def run(t: Tensor) -> Tensor:
            return self.generator(self._z(t), t.to(self.device)).float().cpu()

        with torch.no_grad():
            out = apply_tiled(run, x, tile, overlap, scale)
        return self._like(out.clamp(-1, 1), as_pil)

    def inpaint(self, image: ImageLike, mask: ImageLike) -> ImageLike:
        """Fill the hole that `mask` marks (white / 1 = hole) in `image`, keeping every other pixel."""
        from belamy.recipes.inpaint import hide

        self._require("inpaint")
        x, as_pil = self._tensor(image, self.data.shape[0])
        m = self._mask(mask)
        if m.shape[0] not in (1, x.shape[0]) or m.shape[2:] != x.shape[2:]:
            raise ValueError(f"the mask is {m.shape[-1]}x{m.shape[-2]} but the image is {x.shape[-1]}x{x.shape[-2]}: "
                             f"they must be the same size")
        m = m.expand(x.shape[0], -1, -1, -1)
        self._check_size(x, "inpaint")
        with torch.no_grad():
            condition = hide(x, m).to(self.device)
            fake = self.generator(self._z(x), condition).float().cpu()
        return self._like(m * fake + (1 - m) * x, as_pil)

    def sample(self, *args: Any, **kwargs: Any) -> Tensor:
        raise ValueError(f"this {self.recipe} model maps images to images, it does not sample from noise: use "
                         f"belamy {self.task} (Python: .{self.task}(...))")

    interpolate = sample_images = _require_images = sample

    # --- helpers -----------------------------------------------------------------------------------------------

    def _require(self, task: str) -> None:
        if self.task != task:
            verbs = {"translate": "translate()", "upscale": "upscale()", "inpaint": "inpaint()", "sample": "sample()"}
            raise ValueError(f"this {self.recipe} model does not {task}: it is for {verbs.get(self.task, self.task)}")

    def _reverse(self, direction: str | None) -> bool:
        if direction not in (None, "AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
        if self.recipe == "cyclegan":
            return direction == "BtoA"
        trained = self.options.get("direction", "AtoB")
        if direction not in (None, trained):
            raise ValueError(f"this {self.recipe} model translates {trained} only (it was trained that way); "
                             f"train with --option direction={direction} for the other way")
        return False

    def _input_channels(self, reverse: bool) -> int:
        a, b = (self.data.input_shape or self.data.shape)[0], self.data.shape[0]
        forward = self.options.get("direction", "AtoB") == "AtoB"
        return a if forward != reverse else b

    def _z(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], 0, device=self.device)  # image-to-image generators take no latent

    def _check_size(self, x: Tensor, what: str) -> None:
        multiple = getattr(self.generator, "size_multiple", 1)
        h, w = x.shape[2:]
        if h % multiple or w % multiple:
            raise ValueError(f"cannot {what} a {w}x{h} image: this model's network takes sides that are multiples of "
                             f"{multiple} (e.g. {self.resolution}x{self.resolution}, as trained); crop or pad it, or "
                             f"resize (--resize)")

    @staticmethod
    def _tensor(image: ImageLike, channels: int) -> tuple[Tensor, bool]:
        """(float [B, C, H, W] in [-1, 1] with the model's channels, whether the input was a PIL image)."""
        if isinstance(image, Image.Image):
            from belamy.data.folder import _to_8bit

            array = np.asarray(_to_8bit(image, channels), dtype=np.uint8)
            x = torch.from_numpy(array.copy()).float().div(127.5).sub(1)
            x = x[None] if channels == 1 else x.permute(2, 0, 1)
            return x[None], True
        if not isinstance(image, Tensor):
            raise TypeError(f"expected a PIL image or a tensor, got {type(image).__name__}")
        x = image[None] if image.dim() == 3 else image
        if x.dim() != 4:
            raise ValueError(f"an image tensor must be [C, H, W] or [B, C, H, W], got shape {tuple(image.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1
        if x.shape[1] != channels:
            if x.shape[1] == 1 and channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and channels == 1:
                x = (x * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
            else:
                raise ValueError(f"this model takes {channels}-channel images, got {x.shape[1]} channels")
        return x.float(), False

    @staticmethod
    def _mask(mask: ImageLike) -> Tensor:
        """A mask -> float [B or 1, 1, H, W] of 0 (keep) and 1 (hole)."""
        if isinstance(mask, Image.Image):
            return (torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.uint8).copy()) > 127).float()[None, None]
        m = mask.float() if mask.dtype != torch.bool else mask.float()
        while m.dim() < 4:
            m = m[None]
        if m.shape[1] != 1:
            raise ValueError(f"a mask has one channel, got shape {tuple(mask.shape)}")
        return (m > 0.5).float() if mask.dtype != torch.uint8 else (m > 127).float()

    @staticmethod
    def _like(out: Tensor, as_pil: bool) -> ImageLike:
        if as_pil:
            return to_pil(out)[0]
        return out
