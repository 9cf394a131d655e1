"""Detection and false-positive rates of belamy's invisible watermark (belamy.provenance) after re-encoding.

    python benchmarks/watermark.py [--n 500]

For real images of three sets (shapes at 64 and 32 px, MNIST at 32 px): the rate at which marked images read as marked
after each distortion, the rate at which the same images unmarked read as marked (false positives), and the PSNR of
marked vs original. Threshold z > 4.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image

from belamy.data import open_data
from belamy.provenance import detect_watermark, embed_watermark
from belamy.utils.images import to_pil


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def resize(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)


DISTORTIONS = {
    "PNG (none)": lambda im: im,
    "JPEG q90": lambda im: jpeg(im, 90),
    "JPEG q75": lambda im: jpeg(im, 75),
    "resize 0.75x": lambda im: resize(im, 0.75),
    "resize 1.5x": lambda im: resize(im, 1.5),
    "resize 0.75x + JPEG q75": lambda im: jpeg(resize(im, 0.75), 75),
}


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(i.convert("RGB"), np.float64) for i in (a, b))
    return float(10 * np.log10(255 ** 2 / max(np.mean((x - y) ** 2), 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="images per set")
    args = parser.parse_args()
    print(f"{'set':12s} {'distortion':26s} {'detected':>9s} {'false pos.':>10s}")
    for name, resolution in (("shapes", 64), ("shapes", 32), ("mnist", 32)):
        images = to_pil(open_data(name, resolution=resolution).images[:args.n].float() / 127.5 - 1)
        marked = [embed_watermark(im) for im in images]
        quality = [psnr(a, b) for a, b in zip(images, marked)]
        for label, distort in DISTORTIONS.items():
            hits = np.mean([detect_watermark(distort(im)).marked for im in marked])
            false = np.mean([detect_watermark(distort(im)).marked for im in images])
            print(f"{name}-{resolution:<5d} {label:26s} {hits:9.3f} {false:10.4f}")
        print(f"{name}-{resolution:<5d} PSNR marked vs original: mean {np.mean(quality):.1f} dB, "
              f"worst {np.min(quality):.1f} dB ({len(images)} images)")


if __name__ == "__main__":
    main()
