"""Provenance of the images belamy writes: PNG text metadata, and an invisible watermark that survives re-encoding.

Metadata: every PNG belamy writes carries text chunks (generator "belamy", its version, model name, run id, seed,
condition, a hash of the model's config); `read_provenance` reads them back. Metadata is lost as soon as an image is
re-encoded or screenshotted, hence the watermark.

Watermark: additive spread spectrum in the DCT domain (Cox, Kilian, Leighton and Shamoon 1997, "Secure spread spectrum
watermarking for multimedia"), made blind and scale-free by working at one canonical size. A key seeds N = 221 signs
w_i = +-1, one per DCT coefficient of a mid-low frequency band (4 <= u + v <= 20) of the luminance resampled to
64 x 64. Detection resamples any image to 64 x 64 and counts sign agreements: z = sum(w_i sign(c_i)) / sqrt(N). The
host's signs are independent of the key, so without the mark z follows a binomial whatever the image (P(z > 4) ~ 3e-5),
a sign-correlation detector robust to the host's heavy-tailed coefficients. Embedding is informed (Cox, Miller and
McKellips 1999, "Watermarking as communications with side information"): it sets w_i * c_i >= margin on the cheapest
coefficients (those that need the least change) until z reaches TARGET_Z, so the large coefficients that carry the
picture stay as they are. The change becomes a 64 x 64 spatial pattern by the inverse DCT, resized to the image and
added to its luminance; where clipping at 0 or 255 eats part of it, the remainder is embedded again. JPEG at quality
>= 75 and mild resizing keep these frequencies (measured in benchmarks/watermark.py). It is a mark for honest
provenance, not a defence against someone who knows the key and removes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.fft import dctn, idctn

CANONICAL = 64  # side of the luminance the mark lives in
BAND = (4, 20)  # DCT coefficients (u, v) with BAND[0] <= u + v <= BAND[1]
DEFAULT_KEY = 0xBE1A3  # belamy's public key; pass another to mark and detect privately
TARGET_Z = 8.0  # z of a freshly marked image (re-encoding and resizing take some of it)
WATERMARK_NAME = "belamy-dct-sign-v1"  # written in the metadata of marked images
THRESHOLD = 4.0  # z above this reads as marked: P(z > 4) ~ 3e-5 for an unmarked image
MIN_MARGIN = 10.0  # |c_i| a marked coefficient keeps at least (DCT units of 0-255 luminance at 64 x 64)


@dataclass(frozen=True)
class WatermarkReading:
    z: float  # detection statistic: ~N(0, 1) without the mark
    marked: bool  # z > THRESHOLD


def _band_mask() -> np.ndarray:
    u, v = np.meshgrid(np.arange(CANONICAL), np.arange(CANONICAL), indexing="ij")
    return (u + v >= BAND[0]) & (u + v <= BAND[1])


def _signs(key: int) -> np.ndarray:
    n = int(_band_mask().sum())
    return np.random.default_rng(key).choice(np.array([-1.0, 1.0]), size=n)


def _luminance(image: Image.Image) -> tuple[np.ndarray, Image.Image | None]:
    """The luminance as float [H, W] and, for colour images, the YCbCr image it came from."""
    if image.mode in ("L", "I;16", "I", "F", "1", "LA"):
        return np.asarray(image.convert("L"), dtype=np.float64), None
    ycbcr = image.convert("RGB").convert("YCbCr")
    return np.asarray(ycbcr.getchannel(0), dtype=np.float64), ycbcr


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float array resized with PIL's antialiased bicubic (size is (width, height))."""
    return np.asarray(Image.fromarray(array.astype(np.float32), mode="F").resize(size, Image.BICUBIC),
                      dtype=np.float64)


def _band_coefficients(luminance: np.ndarray) -> np.ndarray:
    return dctn(_resize(luminance, (CANONICAL, CANONICAL)), norm="ortho")[_band_mask()]


def _z(w: np.ndarray, c: np.ndarray) -> float:
    return float(w @ np.sign(c)) / float(np.sqrt(len(w)))


def _informed_change(c: np.ndarray, w: np.ndarray, target_z: float) -> np.ndarray:
    """The least band change that takes z to target_z: coefficients set to w_i * margin, cheapest first."""
    n = len(w)
    margin = max(MIN_MARGIN, 0.5 * float(np.median(np.abs(c))))
    robust = w * c >= margin  # agreeing with room to spare: kept as they are
    needed = int(np.ceil((target_z * np.sqrt(n) + n) / 2)) - int(robust.sum())
    change = np.zeros(n)
    if needed > 0:
        cost = np.where(robust, np.inf, margin - w * c)  # how far each coefficient is from agreeing with margin
        cheapest = np.argsort(cost)[:needed]
        change[cheapest] = w[cheapest] * margin - c[cheapest]
    return change


def embed_watermark(image: Image.Image, key: int = DEFAULT_KEY, target_z: float = TARGET_Z) -> Image.Image:
    """The image with the key's mark in its luminance (colour and size kept; alpha channels are kept as they were)."""
    if min(image.size) < 8:
        raise ValueError(f"image of {image.size[0]}x{image.size[1]} pixels is too small to carry a watermark")
    alpha_channel = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    luminance, ycbcr = _luminance(image)
    w, marked_luminance = _signs(key), luminance
    for _ in range(4):  # clipping at 0 / 255 removes part of the pattern: measure what is left and add more
        c = _band_coefficients(marked_luminance)
        if _z(w, c) >= target_z - 0.5:
            break
        coefficients = np.zeros((CANONICAL, CANONICAL))
        coefficients[_band_mask()] = _informed_change(c, w, target_z)
        pattern = _resize(idctn(coefficients, norm="ortho"), image.size)
        marked_luminance = np.clip(np.round(marked_luminance + pattern), 0, 255)
    marked = Image.fromarray(marked_luminance.astype(np.uint8), mode="L")
    if ycbcr is None:
        out = marked
    else:
        _, cb, cr = ycbcr.split()
        out = Image.merge("YCbCr", (marked, cb, cr)).convert("RGB")
    if alpha_channel is not None:
        out = out.convert("RGBA" if out.mode == "RGB" else "LA")
        out.putalpha(alpha_channel)
    return out


def detect_watermark(image: Image.Image, key: int = DEFAULT_KEY) -> WatermarkReading:
    """The detection statistic of the key's mark in an image (any size, mode or re-encoding)."""
    if min(image.size) < 8:
        raise ValueError(f"image of {image.size[0]}x{image.size[1]} pixels is too small to read a watermark from")
    z = _z(_signs(key), _band_coefficients(_luminance(image)[0]))
    return WatermarkReading(z=z, marked=bool(z > THRESHOLD))


# --- metadata ------------------------------------------------------------------------------------------------------

def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a model's config (what it is, not where it lies)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def provenance_text(config: dict[str, Any], seed: int | None = None, condition: str | None = None,
                    **extra: Any) -> dict[str, str]:
    """The PNG text chunks of an image made by the model whose config is `config`."""
    from belamy import __version__

    name = str(config.get("name") or config.get("run") or config.get("recipe", ""))
    step = config.get("step")
    text = {"Software": f"belamy {__version__}", "generator": "belamy", "model": name,
            "recipe": str(config.get("recipe", "")),
            "run_id": f"{name}@{step}" if step is not None else name,
            "config_hash": config_hash(config)}
    if seed is not None:
        text["seed"] = str(seed)
    if condition is not None:
        text["condition"] = str(condition)
    text.update({k: str(v) for k, v in extra.items() if v is not None})
    return text


def read_provenance(path: str | Path) -> dict[str, str]:
    """The PNG text chunks of a file (empty for other formats or an image without them)."""
    with Image.open(path) as image:
        image.load()
        return {k: v for k, v in getattr(image, "text", {}).items() if isinstance(v, str)}
