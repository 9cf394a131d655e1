"""Built-in data sets: shapes, labels, value ranges, and the mixtures' exact modes."""

import math

import pytest
import torch

from belamy.data import DATASETS, DataError, open_data


def test_ring8_has_eight_distinct_modes_on_the_unit_circle():
    ring = open_data("ring8")
    modes = ring.modes
    assert modes.shape == (8, 2) and ring.std == 0.01
    assert torch.allclose(modes.norm(dim=1), torch.ones(8), atol=1e-6)
    # The linspace(0, 2*pi, 8) bug puts the 8th mode on top of the first: all pairwise gaps must be 2 sin(pi/8).
    gaps = torch.pdist(modes)
    assert gaps.min() == pytest.approx(2 * math.sin(math.pi / 8), rel=1e-5)


def test_grid25_modes_and_sampling():
    grid = open_data("grid25")
    assert grid.modes.shape == (25, 2) and grid.std == 0.05
    assert sorted(set(grid.modes[:, 0].tolist())) == [-4, -2, 0, 2, 4]
    points, labels = grid.sample(20000, torch.Generator().manual_seed(0))
    assert points.shape == (20000, 2) and labels.unique().numel() == 25
    offsets = points - grid.modes[labels]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.05)
    again, _ = grid.sample(20000, torch.Generator().manual_seed(0))
    assert torch.equal(points, again)  # seeded: a resumed run draws the same points


def test_mnist_and_digits():
    mnist = open_data("mnist")
    assert mnist.images.shape == (5000, 1, 28, 28) and mnist.images.dtype == torch.uint8
    assert mnist.info.num_classes == 10 and torch.bincount(mnist.labels).min() > 400
    assert mnist.images.max() == 255
    digits = open_data("digits")
    assert digits.images.shape == (1797, 1, 8, 8) and digits.images.max() == 255  # 0..16 scaled to 0..255


def test_resize_and_channels():
    mnist32 = open_data("mnist", resolution=32, channels=3)
    assert mnist32.images.shape == (5000, 3, 32, 32) and mnist32.info.shape == (3, 32, 32)
    assert torch.equal(mnist32.images[:, 0], mnist32.images[:, 2])


def test_unknown_and_misused_names():
    with pytest.raises(DataError, match="Did you mean 'mnist'"):
        open_data("mnsit")
    with pytest.raises(DataError, match="2-D points"):
        open_data("ring8", resolution=32)
    assert set(DATASETS.names()) >= {"mnist", "digits", "ring8", "grid25"}
