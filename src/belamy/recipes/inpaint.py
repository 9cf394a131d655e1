"""`inpaint`: fill holes in images with a conditional GAN (after Pathak et al. 2016, "Context Encoders", and Iizuka
et al. 2017, "Globally and Locally Consistent Image Completion"; free-form masks as Yu et al. 2019, "Free-Form Image
Inpainting with Gated Convolution").

G (a U-Net) sees the image with its hole blanked out, plus the mask as a fourth channel, and paints the whole image;
only the hole is kept (the known pixels are pasted back). D, a PatchGAN, judges the completed image with the mask,
patch by patch: a local discriminator everywhere, which sees the seams a global one misses. G's reconstruction loss
weighs the hole more than the known pixels (Liu et al. 2018's hole weight). Masks are drawn on the fly for every
batch: boxes, free-form strokes, or both; or taken at random from a folder of mask images (white = hole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from belamy.data.base import DataError, DataInfo
from belamy.nets import PatchDiscriminator, UNetGenerator
from belamy.recipes.base import RECIPES, Batch, ImageToImage, RecipeDefaults
from belamy.recipes.pix2pix import patch_layers

MASK_KINDS = ("box", "free-form", "mixed")


@dataclass
class InpaintOptions:
    masks: str = "mixed"  # "box", "free-form", "mixed" (each batch half and half), or a folder of mask images
    l1_weight: float = 100.0  # of the reconstruction loss
    hole_weight: float = 6.0  # L1 inside the hole counts this many times more than outside (Liu et al. 2018)
    width: int = 64  # U-Net channels (ngf)
    depth: int = 0  # U-Net levels; 0: down to 1x1
    d_width: int = 64
    d_layers: int = 0  # PatchGAN layers; 0: by resolution (see pix2pix)


def box_masks(u: Tensor, size: int) -> Tensor:
    """One rectangle per row of uniform draws u [B, 4] -> masks [B, 1, size, size] (1 = hole): sides between a
    quarter and a half of the image, anywhere inside it."""
    side = (0.25 + 0.25 * u[:, :2]) * size  # [B, 2]: height, width
    corner = u[:, 2:] * (size - side)  # [B, 2]: top, left
    grid = torch.arange(size, device=u.device, dtype=u.dtype) + 0.5
    rows = (grid[None] >= corner[:, :1]) & (grid[None] < corner[:, :1] + side[:, :1])  # [B, size]
    cols = (grid[None] >= corner[:, 1:]) & (grid[None] < corner[:, 1:] + side[:, 1:])
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1).to(u.dtype)


def stroke_masks(u: Tensor, size: int) -> Tensor:
    """Free-form masks: a brush stroke through V vertices per row of uniform draws u [B, V, 3] (a random walk of
    angles and lengths from a random start, as Yu et al. 2019's algorithm 1) -> [B, 1, size, size]. The stroke's
    width is a tenth to a fifth of the image; pixels within half a width of any segment are holes."""
    b, v, _ = u.shape
    start = u[:, 0, :2] * size  # [B, 2]
    width = (0.1 + 0.1 * u[:, 0, 2]) * size  # [B]
    angle = u[:, 1:, 0] * 2 * math.pi
    length = (0.15 + 0.25 * u[:, 1:, 1]) * size
    steps = torch.stack([length * angle.cos(), length * angle.sin()], dim=-1)  # [B, V-1, 2]
    walk = torch.cat([start[:, None], start[:, None] + steps.cumsum(1)], 1)  # [B, V, 2]
    points = size - ((walk % (2 * size)) - size).abs()  # reflected at the borders: the stroke stays inside
    a, d = points[:, :-1], points[:, 1:] - points[:, :-1]  # segments a + t d, t in [0, 1]: [B, V-1, 2]
    grid = torch.arange(size, device=u.device, dtype=u.dtype) + 0.5
    p = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(1, 1, -1, 2)  # pixel centres [1,1,P,2]
    t = ((p - a[:, :, None]) * d[:, :, None]).sum(-1) / d.square().sum(-1).clamp_min(1e-6)[:, :, None]
    nearest = a[:, :, None] + t.clamp(0, 1)[..., None] * d[:, :, None]  # [B, V-1, P, 2]
    distance = (p - nearest).norm(dim=-1).amin(1)  # [B, P]
    return (distance <= width[:, None] / 2).to(u.dtype).view(b, 1, size, size)


def load_masks(folder: str | Path, size: int) -> Tensor:
    """Every image in `folder` as a mask [N, 1, size, size] (white, > 127, is a hole), resized to the images."""
    from belamy.data.folder import BadImageError, load_image, scan_folder

    paths = scan_folder(folder)[0]
    if not paths:
        raise DataError(f"mask folder {folder} holds no images")
    masks = []
    for path in paths:
        try:
            masks.append(load_image(path, 1, size))
        except BadImageError as e:
            raise DataError(f"mask {e}") from None
    masks = (torch.stack(masks).float() > 127).float()
    empty = [str(p) for p, m in zip(paths, masks) if not m.any()]
    if empty:
        raise DataError(f"masks without any hole (no white pixel): {', '.join(empty[:5])}")
    return masks


@RECIPES.register("inpaint")
class Inpaint(ImageToImage):
    """Image inpainting: U-Net G on (image with hole, mask), PatchGAN D on (completed image, mask), hole-weighted L1."""

    name = "inpaint"
    Options = InpaintOptions
    task = "inpaint"
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), batch_size=16)
    d_loss_scale = 0.5

    def __init__(self, options: InpaintOptions, data: DataInfo, loss) -> None:
        super().__init__(options, data, loss)
        self._mask_bank = None if options.masks in MASK_KINDS else load_masks(options.masks, data.shape[1])

    @classmethod
    def check_data(cls, options: InpaintOptions, data: DataInfo) -> None:
        super().check_data(options, data)
        if options.masks not in MASK_KINDS and not Path(options.masks).is_dir():
            raise ValueError(f"option masks must be one of {', '.join(MASK_KINDS)} or a folder of mask images; "
                             f"{options.masks!r} is neither")

    @classmethod
    def build_generator(cls, options: InpaintOptions, data: DataInfo) -> nn.Module:
        c, r = data.shape[0], data.shape[1]
        return UNetGenerator(c + 1, c, r, options.width, depth=options.depth or None, dropout=0.0)

    @classmethod
    def build_discriminator(cls, options: InpaintOptions, data: DataInfo) -> nn.Module:
        return PatchDiscriminator(data.shape[0] + 1, options.d_width, patch_layers(options.d_layers, data.shape[1]))

    def masks(self, batch: Batch) -> Tensor:
        """Holes for this batch [B, 1, H, W], from the run's generator (drawn for the global batch under DDP)."""
        size, kind = batch.real.shape[-1], self.options.masks
        if self._mask_bank is not None:
            pick = (batch.rand(1)[:, 0] * len(self._mask_bank)).long().clamp_max(len(self._mask_bank) - 1)
            return self._mask_bank.to(batch.real.device)[pick]
        boxes = box_masks(batch.rand(4), size) if kind != "free-form" else None
        strokes = stroke_masks(batch.rand(5, 3), size) if kind != "box" else None
        if boxes is None or strokes is None:
            return boxes if strokes is None else strokes
        return torch.where(batch.rand(1)[:, :, None, None] < 0.5, boxes, strokes)

    def make_condition(self, batch: Batch) -> tuple[Tensor, Tensor]:
        mask = self.masks(batch).to(batch.real.dtype)
        return hide(batch.real, mask), batch.real

    def discriminate(self, condition: Tensor, image: Tensor) -> Tensor:
        return self.D(torch.cat([image, condition[:, -1:]], dim=1))  # the completed image and where its hole was

    def finish(self, fake: Tensor, condition: Tensor, target: Tensor) -> Tensor:
        mask = condition[:, -1:]
        return mask * fake + (1 - mask) * condition[:, :-1]  # the known pixels stay as they were

    def reconstruction(self, fake: Tensor, target: Tensor, condition: Tensor) -> dict[str, Tensor]:
        mask = condition[:, -1:].float()
        weight = 1 + (self.options.hole_weight - 1) * mask
        return {"l1": self.options.l1_weight * ((fake - target).abs() * weight).mean() / weight.mean()}

    def show_condition(self, condition: Tensor, target: Tensor) -> Tensor:
        return condition[:, :-1]  # the image with its hole (shown as 0, mid gray)


def hide(images: Tensor, mask: Tensor) -> Tensor:
    """G's input: the images with the hole set to 0 (mid gray in [-1, 1]), and the mask as an extra channel."""
    return torch.cat([images * (1 - mask), mask], dim=1)
