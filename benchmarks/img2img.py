"""Image-to-image GANs, measured on held-out data: what each recipe achieves in a short CPU training.

    python benchmarks/img2img.py [--only pix2pix,cyclegan,srgan,inpaint] [--scale 1.0] [--threads 1]
                                 [--examples docs/img2img]

Each job trains through `belamy.train` and is measured by `belamy.metrics.image_to_image.evaluate_image_to_image`
(the figures `belamy eval RUN` prints) on the test split, which training never sees:
  pix2pix   edges2mnist: PSNR/SSIM to the true digits; label preservation = the in-domain MNIST classifier
            (trained on the training split, its held-out accuracy printed beside) recognizes the intended digit;
  cyclegan  mnist-strokes (thin <-> thick, unpaired): label preservation both ways, cycle reconstruction L1/PSNR;
  srgan     x2 and x4 on mnist and shapes: PSNR/SSIM of the upscaled images against the originals, beside bicubic
            upsampling's (the baseline every SR paper reports);
  inpaint   mnist and shapes, box and free-form holes drawn from a fixed seed: PSNR inside the hole, beside a
            mean-fill baseline (the hole filled with the mean colour of the known pixels).
Training steps scale with --scale (1.0: the figures in README). With --examples, each job writes its sample grid
(input | output | target) there.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

import belamy
from belamy.metrics.image_to_image import evaluate_image_to_image

SMALL_UNET = {"width": 32, "d_width": 32}
JOBS = [  # name, recipe, training data, test data, resolution, steps, batch size, options
    ("pix2pix edges2mnist", "pix2pix", "edges2mnist", "edges2mnist:test", 32, 1200, 32, SMALL_UNET),
    ("cyclegan mnist-strokes", "cyclegan", "mnist-strokes", "mnist-strokes:test", 32, 600, 8,
     {"width": 16, "d_width": 16, "blocks": 3}),
    ("srgan x2 mnist", "srgan", "mnist:train", "mnist:test", 32, 400, 16, {"scale": 2, "width": 32, "blocks": 4}),
    ("srgan x4 mnist", "srgan", "mnist:train", "mnist:test", 32, 400, 16, {"scale": 4, "width": 32, "blocks": 4}),
    ("srgan x2 shapes", "srgan", "shapes", "shapes:test", 64, 400, 16, {"scale": 2, "width": 32, "blocks": 4}),
    ("srgan x4 shapes", "srgan", "shapes", "shapes:test", 64, 400, 16, {"scale": 4, "width": 32, "blocks": 4}),
    ("inpaint mnist", "inpaint", "mnist:train", "mnist:test", 32, 600, 32, SMALL_UNET),
    ("inpaint shapes", "inpaint", "shapes", "shapes:test", 32, 600, 32, SMALL_UNET),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated recipe names to run (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every job's training steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=1000, help="held-out images measured per job")
    parser.add_argument("--examples", help="folder for each job's sample grid (input | output | target)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    work = Path(tempfile.mkdtemp(prefix="belamy-img2img-"))
    print(f"{'job':24s} {'steps':>5s} {'train s':>7s}  figures (held-out test split)")
    try:
        for name, recipe, data, test, resolution, steps, batch, options in JOBS:
            if only and recipe not in only:
                continue
            steps = max(1, round(steps * args.scale))
            t0 = time.perf_counter()
            run = belamy.train(model=recipe, data=data, resolution=resolution, steps=steps, batch_size=batch,
                               options=options, out=str(work), name=name.replace(" ", "-"), progress=False,
                               sample_every=0, ckpt_every=0, log_every=100, seed=0)
            seconds = time.perf_counter() - t0
            result = evaluate_image_to_image(belamy.load(run.path), test, n=args.n)
            figures = "  ".join(f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float))
            print(f"{name:24s} {steps:5d} {seconds:7.0f}  {figures}", flush=True)
            if args.examples:
                Path(args.examples).mkdir(parents=True, exist_ok=True)
                shutil.copy(run.path / "samples.png", Path(args.examples) / f"{name.replace(' ', '-')}.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
