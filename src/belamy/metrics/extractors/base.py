"""What every feature extractor is: a network mapping images to vectors, its preprocessing, and its provenance.

Images arrive as uint8 [B, C, H, W] (data sets, folders) or floats in [-1, 1] (generators). Preprocessing, in order:
  1. floats are quantized to uint8 the way a saved PNG would be, so fake and real images reach the network
     through the same path (clean-fid's finding: Parmar et al. 2022, "On Aliased Resizing and Surprising
     Subtleties in GAN Evaluation", sec. 4, where unquantized fakes shift FID);
  2. channels are matched to the network's (gray repeated to RGB; RGB to gray by ITU-R 601 luma, PIL's "L");
  3. images are resized to the network's input size by the chosen resizer (`RESIZERS`), in float, 0..255;
  4. pixels are mapped to the network's input range.
The resizer is part of every statistics file's fingerprint: two numbers made with different resizers differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.data.base import ImageSet
from belamy.metrics.cache import tensors_sha256
from belamy.registry import Registry

# clean: bicubic with antialiasing (clean-fid's default; Parmar et al. 2022): torch's antialiased bicubic uses PIL's
#   kernel (a = -0.5) and support, so it equals PIL's Image.resize(BICUBIC) on float pixels (clean-fid's resizer)
#   to within ~3e-3 on the 0..255 scale (tests/test_metrics_extractors.py) while running batched on any device.
# legacy: bilinear without antialiasing, as pytorch-fid resizes (F.interpolate, align_corners=False): it aliases
#   when shrinking, and TF1's resize used by the original FID code differs from it slightly again.
RESIZERS: tuple[str, ...] = ("clean", "legacy")


class ExtractorError(ValueError):
    """A feature extractor that cannot be built or loaded: the message says what to do."""


def resize_images(x: Tensor, size: int, resizer: str) -> Tensor:
    """Float images [B, C, H, W] in 0..255 -> [B, C, size, size]; unchanged when already that size."""
    if resizer not in RESIZERS:
        raise ValueError(f"unknown resizer {resizer!r}; valid resizers: {', '.join(RESIZERS)}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    if resizer == "clean":
        y = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        return y.clamp_(0, 255)  # bicubic overshoots next to edges; clean-fid clips to the pixel range as well
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=False, align_corners=False)


def to_uint8_range(images: Tensor) -> Tensor:
    """uint8 images, or floats in [-1, 1], [B, C, H, W] -> float32 in 0..255 holding whole numbers (quantized)."""
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float()
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floats in [-1, 1], got dtype {images.dtype}")
    return ((images.float() + 1) * 127.5).round_().clamp_(0, 255)


def match_channels(x: Tensor, channels: int) -> Tensor:
    """[B, C, H, W] -> [B, channels, H, W]: gray repeated to RGB, RGB to gray by ITU-R 601 luma (as PIL's "L")."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
        return torch.einsum("bchw,c->bhw", x, weights).unsqueeze(1)
    raise ValueError(f"cannot turn {c}-channel images into the {channels} channels the extractor takes")


class FeatureExtractor:
    """A network that maps images to feature vectors [B, D] (and logits [B, K] where it has a classifier head),
    with the preprocessing and the provenance that statistics fingerprints record.

    `net` is any nn.Module taking images [B, input_channels, S, S] in `input_range` and returning either the
    features or a (features, logits) pair. That is all a custom extractor needs:
    `FeatureExtractor(my_net, "my-net", input_size=64, input_channels=3)`."""

    def __init__(self, net: nn.Module, name: str, *,
                 input_size: int | None,  # side images are resized to; None: images keep their own size
                 input_channels: int = 3,  # 1 or 3
                 input_range: tuple[float, float] = (-1.0, 1.0),  # what pixel values 0 and 255 map to
                 resizer: str = "clean",  # see RESIZERS
                 device: str | torch.device = "cpu",
                 weights_sha256: str | None = None,  # None: hashed from net's state dict
                 accuracy: float | None = None,  # held-out accuracy of a classifier, reported beside its numbers
                 trained_on: str | None = None,  # the data set that accuracy was measured on
                 details: dict[str, Any] | None = None) -> None:  # JSON-able extras for results (e.g. cache hits)
        if resizer not in RESIZERS:
            raise ValueError(f"unknown resizer {resizer!r}; valid resizers: {', '.join(RESIZERS)}")
        if input_channels not in (1, 3):
            raise ValueError(f"input_channels must be 1 or 3, got {input_channels}")
        self.device = torch.device(device)
        self.net = net.eval().requires_grad_(False).to(self.device)
        self.name = name
        self.input_size = input_size
        self.input_channels = input_channels
        self.input_range = input_range
        self.resizer = resizer
        self.weights_sha256 = weights_sha256 or tensors_sha256(net.state_dict(), ("num_batches_tracked",))
        self.accuracy = accuracy
        self.trained_on = trained_on
        self.details = dict(details or {})

    def prepare(self, images: Tensor) -> Tensor:
        """Images (uint8, or floats in [-1, 1]) -> the network's input, on its device (steps 1-4 above)."""
        x = to_uint8_range(images.to(self.device))
        x = match_channels(x, self.input_channels)
        if self.input_size is not None:
            x = resize_images(x, self.input_size, self.resizer)
        lo, hi = self.input_range
        return x * ((hi - lo) / 255.0) + lo

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features [B, D] and logits [B, K] (None without a head), float32 on the CPU."""
        out = self.net(self.prepare(images))
        features, logits = out if isinstance(out, tuple) else (out, None)
        if features.dim() != 2 or features.shape[0] != images.shape[0]:
            raise ValueError(f"extractor {self.name!r} returned shape {tuple(features.shape)}; it must map "
                             f"{images.shape[0]} images to [{images.shape[0]}, D] feature vectors")
        return features.float().cpu(), None if logits is None else logits.float().cpu()

    def info(self) -> dict[str, Any]:
        """What results report about the extractor (JSON-able)."""
        return {"name": self.name, "weights_sha256": self.weights_sha256, "resizer": self.resizer,
                "input_size": self.input_size, "input_channels": self.input_channels,
                "accuracy": self.accuracy, "trained_on": self.trained_on, **self.details}


@dataclass
class ExtractorOptions:
    """What a registered extractor may be built from; each factory uses the fields it needs."""

    weights: str | None = None  # a weights file (inception); None: the standard file under BELAMY_HOME/weights
    resizer: str = "clean"  # see RESIZERS
    device: str = "cpu"
    data: ImageSet | None = None  # labeled images to train on (classifier)
    data_name: str = ""  # the name that data is reported by (a built-in name or a folder path)


ExtractorFactory = Callable[[ExtractorOptions], FeatureExtractor]
EXTRACTORS: Registry[ExtractorFactory] = Registry("feature extractor")
