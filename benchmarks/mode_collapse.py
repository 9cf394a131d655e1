"""Mode collapse: how many modes each GAN variant finds, and how well, on ring8, grid25 and stacked MNIST.

    python benchmarks/mode_collapse.py [--data ring8,grid25,stacked-mnist] [--variants default,gan-2014,...]
                                       [--seeds 5] [--first-seed 0] [--steps N] [--image-steps N] [--threads 1]

Counted as VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018) count them:
- ring8, grid25: 2,500 samples; a sample is high quality within 3 standard deviations of a mode (the data set's std:
  0.01 on the ring, 0.05 on the grid), and a mode is covered by at least one high-quality sample;
- stacked MNIST: 26,000 samples; each channel is classified by an MNIST classifier (belamy.metrics.classifier) and
  the modes are the distinct triples of digits (of 1,000); KL is that of the 1,000-bin histogram to uniform.
Every variant trains through `belamy.train` for the same number of G steps; the table gives mean +- std over seeds
and the wall time of one training. The "real data" row scores samples of the data set itself (the ceiling).
PacGAN2's published figures (many more steps): ring 7.9/8 modes, 95.6% high quality; grid 23.8/25, 91.3%;
stacked MNIST 1,000 modes, KL 0.06.

Variants (the 2-D sets train the `gan` recipe's MLPs; stacked MNIST trains a DCGAN with the same widths for all):
  default         the recipe's defaults, untouched (for `gan`: one sample per D input, see recipes/gan.py)
  gan-2014        minimax loss log(1 - D(G(z))) (Goodfellow et al. 2014), one sample per D input
  non-saturating  -log D(G(z)) (Goodfellow et al. 2014, section 3), one sample per D input
  wgan-gp         Wasserstein loss with gradient penalty 10, 5 critic steps, Adam betas (0, 0.9) (Gulrajani et al.)
  hinge-sn        hinge loss, spectral norm in D (Miyato et al. 2018)
  mbstd           non-saturating + minibatch standard deviation in D (Karras et al. 2018)
  pack2           non-saturating + PacGAN2 (Lin et al. 2018)
  pack2-mbstd     both
  mbstd-noise     mbstd + instance noise of 0.3 data stds over the first half of the run (Sonderby et al. 2017);
                  2-D only (the `gan` recipe's option)
  mbstd-r1        mbstd + R1 penalty on D's slope at real samples (Mescheder et al. 2018), gamma 0.1 on grid25 and
                  0.1 / 16 on ring8 (gamma has units of squared distance, and ring8's spread is a quarter of
                  grid25's); 2-D only
  mbstd-r1-wide   mbstd-r1 with a D of 128 maxout units per layer instead of 64 (`-o d_width=128`, ~1.8x slower);
                  2-D only
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

import belamy
from belamy.data import open_data
from belamy.metrics.classifier import train_classifier
from belamy.metrics.modes import mode_coverage, stacked_mnist_modes

POINT_SETS = ("ring8", "grid25")
IMAGE_SETS = ("stacked-mnist",)
DEFAULT_STEPS = {"ring8": 1800, "grid25": 1800, "stacked-mnist": 1000}
POINT_SAMPLES, IMAGE_SAMPLES = 2500, 26_000  # as in PacGAN's code
IMAGE_WIDTHS = {"latent_dim": 100, "g_width": 32, "d_width": 32}  # a small DCGAN, the same for every variant


@dataclass
class Variant:
    """How a variant trains: belamy.train keyword arguments for 2-D points and for images."""

    points: dict[str, Any]  # ring8, grid25: the `gan` recipe
    images: dict[str, Any] | None  # stacked MNIST: a DCGAN (None: a 2-D variant only)
    scaled: dict[str, dict[str, Any]] | None = None  # per data set: recipe options that depend on the data's scale

    def kwargs(self, data: str) -> dict[str, Any] | None:
        kwargs = self.points if data in POINT_SETS else self.images
        if kwargs is None or not self.scaled or data not in self.scaled:
            return kwargs
        return {**kwargs, "options": {**kwargs["options"], **self.scaled[data]}}


def _gan(**options: Any) -> dict[str, Any]:
    return {"model": "gan", "options": {"pack": 1, **options}}  # unpacked unless the variant packs


def _dcgan(**options: Any) -> dict[str, Any]:
    return {"model": "dcgan", "options": {**IMAGE_WIDTHS, **options}}


# R1's gamma has units of squared distance: ring8's spread is a quarter of grid25's
R1_GAMMA = {"grid25": {"r1": 0.1}, "ring8": {"r1": 0.1 / 16}}
VARIANTS: dict[str, Variant] = {
    "default": Variant({"model": "gan"}, _dcgan()),
    "gan-2014": Variant({**_gan(), "loss": "minimax"}, {**_dcgan(), "loss": "minimax"}),
    "non-saturating": Variant({**_gan(), "loss": "nonsaturating"}, {**_dcgan(), "loss": "nonsaturating"}),
    "wgan-gp": Variant({**_gan(gp_weight=10.0), "loss": "wasserstein", "d_steps": 5, "betas": (0.0, 0.9)},
                       {"model": "wgan-gp", "options": IMAGE_WIDTHS}),
    "hinge-sn": Variant({**_gan(sn=True), "loss": "hinge"}, {**_dcgan(sn=True), "loss": "hinge"}),
    "mbstd": Variant(_gan(mbstd=True), _dcgan(mbstd=True)),
    "pack2": Variant(_gan(pack=2), _dcgan(pack=2)),
    "pack2-mbstd": Variant(_gan(pack=2, mbstd=True), _dcgan(pack=2, mbstd=True)),
    "mbstd-noise": Variant(_gan(mbstd=True, noise=0.3), None),
    "mbstd-r1": Variant(_gan(mbstd=True), None, scaled=R1_GAMMA),
    "mbstd-r1-wide": Variant(_gan(mbstd=True, d_width=128), None, scaled=R1_GAMMA),
}


def train_and_score(data: str, kwargs: dict[str, Any], steps: int, seed: int, classifier) -> tuple[dict, float]:
    """One training through the public API, then the mode counts of its samples; returns (scores, wall seconds)."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run = belamy.train(data=data, steps=steps, seed=seed, out=out, sample_every=0, ckpt_every=0,
                           log_every=max(steps, 1), progress=False, **kwargs)
        wall = time.perf_counter() - t0
        g = belamy.load(run.path)
        if data in POINT_SETS:
            source = open_data(data)
            return mode_coverage(g.sample(POINT_SAMPLES, seed=10_000 + seed), source.modes, source.std), wall
        samples = g.sample(IMAGE_SAMPLES, seed=10_000 + seed, batch_size=512)
        return stacked_mnist_modes(classifier, samples), wall


def real_scores(data: str, classifier) -> dict:
    source = open_data(data)
    if data in POINT_SETS:
        points, _ = source.sample(POINT_SAMPLES, torch.Generator().manual_seed(0))
        return mode_coverage(points, source.modes, source.std)
    return stacked_mnist_modes(classifier, source.images.float() / 127.5 - 1)


def mean_std(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=",".join(POINT_SETS + IMAGE_SETS), help="comma-separated data sets")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per variant: first-seed .. first-seed + N - 1")
    parser.add_argument("--first-seed", type=int, default=0, help="to add seeds to a table measured before")
    parser.add_argument("--steps", type=int, default=None, help="G steps on ring8/grid25 (default 1800 each)")
    parser.add_argument("--image-steps", type=int, default=None, help="G steps on stacked MNIST (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets = [d for d in args.data.split(",") if d]
    variants = [v for v in args.variants.split(",") if v]
    for name in datasets:
        if name not in POINT_SETS + IMAGE_SETS:
            parser.error(f"unknown data set {name!r}: {', '.join(POINT_SETS + IMAGE_SETS)}")
    for name in variants:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}: {', '.join(VARIANTS)}")

    classifier = None
    if any(d in IMAGE_SETS for d in datasets):
        trained = train_classifier(open_data("mnist"), epochs=5)
        classifier = trained.net
        print(f"MNIST classifier: {trained.test_accuracy:.1%} held-out accuracy", flush=True)

    rows = []
    for data in datasets:
        points = data in POINT_SETS
        steps = (args.steps if points else args.image_steps) or DEFAULT_STEPS[data]
        real = real_scores(data, classifier)
        rows.append((data, "real data", "-", f"{real['modes_covered']}/{real['modes']}",
                     f"{real['high_quality']:.1%}" if points else f"{real['kl_uniform']:.3f}", "-"))
        for name in variants:
            kwargs = VARIANTS[name].kwargs(data)
            if kwargs is None:
                print(f"{data} {name}: skipped (a variant for 2-D data only)", flush=True)
                continue
            scores, walls = [], []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                result, wall = train_and_score(data, kwargs, steps, seed, classifier)
                scores.append(result)
                walls.append(wall)
                print(f"{data} {name} seed {seed}: {result} ({wall:.1f} s)", flush=True)
            modes = mean_std([float(s["modes_covered"]) for s in scores], ".1f")
            if points:
                q = mean_std([100 * s["high_quality"] for s in scores], ".1f") + "%"
            else:
                q = mean_std([s["kl_uniform"] for s in scores], ".2f")
            rows.append((data, name, str(steps), f"{modes}/{scores[0]['modes']}", q, f"{statistics.mean(walls):.0f}"))
        print(flush=True)

    last = args.first_seed + args.seeds - 1
    print(f"\nseeds {args.first_seed}-{last}, {args.threads} thread(s); mean ± std over seeds\n")
    print("| data | variant | steps | modes | high quality (ring8, grid25) / KL to uniform (stacked MNIST) | s/run |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
