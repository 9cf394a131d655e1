"""Tensors <-> PIL images and sample grids (belamy does not depend on torchvision)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1], [B, C, H, W] -> uint8 [B, H, W, C] on the CPU."""
    assert images.dim() == 4, images.shape
    x = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    arrays = to_uint8(images).numpy()
    return [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a) for a in arrays]


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """[B, C, H, W] in [-1, 1] -> one PIL image, `nrow` images per row (default: a square-ish grid)."""
    arrays = to_uint8(images).numpy()
    b, h, w, c = arrays.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i, a in enumerate(arrays):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = a
    return Image.fromarray(grid[:, :, 0] if c == 1 else grid)


def save_png(image: Image.Image, path: str | Path, text: dict[str, str] | None = None,
             watermark: bool = False) -> Path:
    """Write a PNG atomically (a reader never sees half a file), with text chunks (belamy.provenance) and, if asked,
    the invisible watermark."""
    from belamy.provenance import WATERMARK_NAME, embed_watermark

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dict(text or {})
    if watermark:
        image, text["watermark"] = embed_watermark(image), WATERMARK_NAME
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    image.save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)
    return path


def scatter_points(points: torch.Tensor, modes: torch.Tensor | None = None, size: int = 512,
                   extent: float | None = None) -> Image.Image:
    """A plot of 2-D samples (blue) over the data's mode centres (red), drawn with PIL alone."""
    from PIL import ImageDraw

    pts = points.detach().float().cpu()
    ref = modes.float().cpu() if modes is not None else pts
    extent = extent or float(ref.abs().max()) * 1.4 + 1e-6
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)

    def pixel(p: torch.Tensor) -> tuple[float, float]:
        return ((p[0].item() / extent + 1) * size / 2, (1 - p[1].item() / extent) * size / 2)

    for p in pts[torch.isfinite(pts).all(1)]:
        x, y = pixel(p)
        draw.point((x, y), fill=(30, 90, 200))
    for m in ref if modes is not None else []:
        x, y = pixel(m)
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=(220, 30, 30), width=2)
    return image
