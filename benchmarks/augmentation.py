"""Does synthetic data from a belamy GAN help a classifier that has only a few real examples per class?

    python benchmarks/augmentation.py [--per-class 10 50] [--seeds 0 1 2] [--gan-steps 1500]

For each number of real digits per class and each seed: K real MNIST digits per class are drawn from `mnist:train`
(nothing else real is used); a classifier trained on them alone, one trained on them with classic augmentation
(random affine: rotation, shift, scale), and one trained on them plus synthetic digits from a class-conditional GAN
(cgan) trained on those same K per class, and one with both the affine augmentation and the synthetic digits; all
tested on the 1,000 held-out digits of `mnist:test`. The classifier,
its steps and its seed are the same in the three arms.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import belamy
from belamy.data import open_data
from belamy.metrics.classifier import classifier_accuracy, fit_classifier
from belamy.pipelines.synthetic import synthesize
from belamy.utils.images import save_png, to_pil

RES = 32
TRAIN_IMAGES = 5000  # every arm's classifier sees this many (repeated) images per epoch: the same steps in each arm


def few_real(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = open_data("mnist:train", resolution=RES)
    g = torch.Generator().manual_seed(seed)
    picks = [torch.nonzero(data.labels == c).flatten() for c in range(10)]
    index = torch.cat([p[torch.randperm(len(p), generator=g)[:per_class]] for p in picks])
    return data.images[index].float() / 127.5 - 1, data.labels[index]


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotation +-15 degrees, shift +-3 px, scale 0.9-1.1: the usual MNIST augmentation."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(15)
    scale = 0.9 + torch.rand(n, generator=generator) * 0.2
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 3 / (RES / 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # background stays -1


def repeat_to(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows drawn from (x, y) in a seeded shuffled order, cycling when there are fewer than n."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    index = order[torch.arange(n) % len(x)]
    return x[index], y[index]


def gan_samples(x: torch.Tensor, y: torch.Tensor, per_class: int, steps: int, seed: int) -> tuple:
    """A cgan trained on exactly these images (written as a labeled folder), then per_class samples per class."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, (image, label) in enumerate(zip(to_pil(x), y.tolist())):
            save_png(image, Path(tmp) / "data" / str(label) / f"{i:05d}.png")
        run = belamy.train(model="cgan", data=str(Path(tmp) / "data"), resolution=RES, channels=1, steps=steps,
                           batch_size=min(64, len(x)), seed=seed, out=tmp, name="gan", progress=False,
                           sample_every=0, ckpt_every=0, log_every=500)
        images, labels, _ = synthesize(belamy.load(run.path), per_class, seed=seed)
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--synthetic-per-class", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    test = open_data("mnist:test", resolution=RES)
    x_test, y_test = test.images.float() / 127.5 - 1, test.labels

    def score(x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
        x, y = repeat_to(x, y, TRAIN_IMAGES)
        return classifier_accuracy(fit_classifier(x, y, 10, args.epochs, seed=seed), x_test, y_test)

    print(f"{'real/class':>10s} {'seed':>4s} {'real only':>9s} {'+ affine':>9s} {'+ GAN':>9s} {'+ both':>9s}")
    results: dict[int, list[tuple[float, ...]]] = {}
    for per_class in args.per_class:
        for seed in args.seeds:
            x, y = few_real(per_class, seed)
            real_only = score(x, y, seed)
            xa, ya = repeat_to(x, y, TRAIN_IMAGES)
            affine = score(torch.cat([x, random_affine(xa, torch.Generator().manual_seed(seed))]),
                           torch.cat([y, ya]), seed)
            xs, ys = gan_samples(x, y, args.synthetic_per_class, args.gan_steps, seed)
            copies = max(1, len(xs) // len(x))
            x_real, y_real = x.repeat(copies, 1, 1, 1), y.repeat(copies)
            with_gan = score(torch.cat([x_real, xs]), torch.cat([y_real, ys]), seed)
            both = score(torch.cat([x, random_affine(xa, torch.Generator().manual_seed(seed)), xs]),
                         torch.cat([y, ya, ys]), seed)
            row = (real_only, affine, with_gan, both)
            results.setdefault(per_class, []).append(row)
            print(f"{per_class:10d} {seed:4d} " + " ".join(f"{v:9.3f}" for v in row), flush=True)
    for per_class, rows in results.items():
        means = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
        print(f"{per_class:10d} mean " + " ".join(f"{v:9.3f}" for v in means))


if __name__ == "__main__":
    main()
