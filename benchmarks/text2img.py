"""Text-to-image on `shapes`: does a trained model draw what its captions say? The figures of issue #4's targets.

    python benchmarks/text2img.py [--steps 10000] [--batch-size 32] [--resolution 32] [--threads 2] [--device cpu]
    python benchmarks/text2img.py --run runs/NAME          # measure a run made before, without training

Trains `belamy.train(model="text2img", data="shapes", ...)` (or takes --run), then measures it with
`belamy.metrics.text_to_image.shapes_consistency` (the figures `belamy eval RUN` prints) on single-object captions of
shapes:test (the training distribution) and shapes-heldout (colour-shape pairs training never saw): background,
object colour, position and size read back from the pixels, shape by the in-domain shape classifier; each beside the
same reading of the real scenes (its ceiling) and chance; and an in-domain FID (that classifier's features) with its
floor, real scenes against real scenes. Prints the command that reproduces the run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import belamy
from belamy.metrics.text_to_image import ATTRIBUTES, MEASURES, shapes_consistency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="measure this run folder instead of training one")
    parser.add_argument("--steps", type=int, default=10000)  # issue #4's ~30-minute budget: ~16 min on two threads
    # of a CPU with native bf16 (AVX512-BF16), ~29 on an AVX2 one (fp32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--option", "-o", action="append", default=[], help="recipe option KEY=VALUE (JSON value)")
    parser.add_argument("--out", default="runs", help="where the trained run goes")
    parser.add_argument("--n", type=int, default=500, help="single-object captions measured per split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run
    if run is None:
        options = {}
        for item in args.option:
            key, _, value = item.partition("=")
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError:
                options[key] = value
        start = time.perf_counter()
        trained = belamy.train(model="text2img", data="shapes", steps=args.steps, batch_size=args.batch_size,
                               resolution=args.resolution, options=options, out=args.out, device=args.device,
                               name=f"text2img-bench-{args.steps}", overwrite=True)
        run = str(trained.path)
        minutes = (time.perf_counter() - start) / 60
        print(f"trained {run}: {args.steps} steps of {args.batch_size} at {args.resolution} px in {minutes:.1f} min "
              f"on {args.device} ({args.threads} threads)")
        extra = "".join(f" -o {o}" for o in args.option)
        print(f"reproduce: belamy train --model text2img --data shapes --steps {args.steps} --batch-size "
              f"{args.batch_size} --resolution {args.resolution} --device {args.device}{extra}")
    model = belamy.load(run, device=args.device)
    print(f"\n{'split':16s} {'attribute':11s} {'model':>7s} {'real':>7s} {'chance':>7s} {'n':>5s}")
    for split in ("shapes:test", "shapes-heldout"):
        result = shapes_consistency(model, split, n=args.n, attributes=MEASURES)
        for attribute in ("background", *ATTRIBUTES):
            chance = result.get(f"{attribute}_chance", result["colour_chance"])
            n = result.get(f"n_{attribute}", result["n"])
            print(f"{split:16s} {attribute:11s} {result[f'{attribute}_accuracy']:7.1%} "
                  f"{result[f'{attribute}_accuracy_real']:7.1%} {chance:7.1%} {n:5d}")
        print(f"{split:16s} {'FID (shape)':11s} {result['fid']:7.2f} {result['fid_real']:7.2f} {'':7s} "
              f"{result['n']:5d}")
    print(f"(shape classifier: {result['shape_classifier_accuracy']:.1%} on held-out real training scenes; "
          f"FID (shape): the Frechet distance of its features from the images to as many other real scenes of the "
          f"split; its 'real' column: the real scenes of the captions against those, the floor)")


if __name__ == "__main__":
    main()
