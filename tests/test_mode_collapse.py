"""The mode-collapse study's pieces: stacked MNIST and its mode count, minibatch standard deviation, and the D options
against collapse (packing, minibatch stddev, spectral norm, gradient penalty) in the `gan` and `dcgan` recipes."""

from __future__ import annotations

import math

import pytest
import torch

import belamy
from belamy.data import DataError, open_data
from belamy.losses import LOSSES
from belamy.metrics import mode_coverage
from belamy.metrics.modes import stacked_mnist_labels, stacked_mnist_labels_to_metric, stacked_mnist_modes
from belamy.nets.dcgan import DCGANDiscriminator
from belamy.nets.layers import MinibatchStdDev
from belamy.nets.mlp import MLPDiscriminator
from belamy.recipes import RECIPES
from belamy.recipes.base import Batch


@pytest.fixture(scope="module")
def stacked():
    return open_data("stacked-mnist")


def _floats(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


# --- stacked MNIST ---------------------------------------------------------------------------------------------------


def test_stacked_mnist_stacks_three_digits_into_1000_modes(stacked):
    assert stacked.images.shape == (25_600, 3, 28, 28) and stacked.images.dtype == torch.uint8
    assert stacked.info.shape == (3, 28, 28) and stacked.info.num_classes == 0  # unconditional for every recipe
    assert stacked.labels.unique().numel() == 1000 and 0 <= stacked.labels.min() and stacked.labels.max() <= 999
    again = open_data("stacked-mnist")
    assert torch.equal(again.images, stacked.images) and torch.equal(again.labels, stacked.labels)
    # Each channel is one of the 5,000 digits, and the label spells the three digits' classes.
    mnist = open_data("mnist")
    flat = mnist.images.flatten(1)
    for i in range(3):
        for channel, place in zip(range(3), (100, 10, 1)):
            match = (flat == stacked.images[i, channel].flatten()).all(dim=1).nonzero()
            assert len(match) >= 1
            assert mnist.labels[match[0, 0]] == stacked.labels[i] // place % 10


def test_stacked_mnist_resizes_and_refuses_gray():
    assert open_data("stacked-mnist", resolution=32).images.shape == (25_600, 3, 32, 32)
    with pytest.raises(DataError, match="RGB"):
        open_data("stacked-mnist", channels=1)


def test_stacked_mnist_modes_on_real_and_collapsed_sets(stacked, mnist_classifier):
    truth = stacked_mnist_labels_to_metric(stacked.labels)  # the whole set, by its own labels
    assert truth["modes_covered"] == 1000 and truth["kl_uniform"] < 0.05, truth
    # The classifier's count on 3,000 real images (~950 modes by chance) is the count of their true labels.
    real, labels = _floats(stacked.images[:3000]), stacked.labels[:3000]
    predicted = stacked_mnist_labels(mnist_classifier, real)
    assert (predicted == labels).float().mean() > 0.8  # ~0.95^3: all three digits right
    measured, expected = stacked_mnist_labels_to_metric(predicted), stacked_mnist_labels_to_metric(labels)
    assert abs(measured["modes_covered"] - expected["modes_covered"]) <= 25, (measured, expected)
    assert measured["kl_uniform"] == pytest.approx(expected["kl_uniform"], abs=0.05)
    collapsed = stacked_mnist_modes(mnist_classifier, real[:1].expand(500, -1, -1, -1))
    assert collapsed["modes_covered"] == 1
    assert collapsed["kl_uniform"] == pytest.approx(math.log(1000))


# --- minibatch standard deviation ------------------------------------------------------------------------------------


def test_minibatch_stddev_appends_one_feature_that_measures_diversity():
    layer = MinibatchStdDev(group_size=4)
    assert layer(torch.randn(8, 5)).shape == (8, 6)
    assert layer(torch.randn(8, 3, 7, 7)).shape == (8, 4, 7, 7)
    assert layer(torch.randn(6, 5)).shape == (6, 6)  # 6 is not a multiple of 4: groups of 3
    x = torch.randn(8, 16, 4, 4)
    out = layer(x)
    assert torch.equal(out[:, :16], x)
    assert (out[:, 16] == out[:, 16, :1, :1]).all()  # one figure per sample, the same at every pixel
    # Groups are 4 consecutive samples: make group 0 identical, group 1 diverse.
    same = x.clone()
    same[:4] = x[0]
    stat = layer(same)[:, 16, 0, 0]
    assert stat[:4].max() < 1e-3 and stat[4:].min() > 0.5
    assert torch.allclose(stat[:4], stat[0]) and torch.allclose(stat[4:], stat[4])
    # More spread in the batch, larger figure; and the figure is differentiable.
    wide = (3 * x).requires_grad_(True)
    assert (layer(wide)[:, 16] > layer(x)[:, 16]).all()
    layer(wide)[:, 16].sum().backward()
    assert wide.grad is not None and wide.grad.abs().sum() > 0


def test_discriminator_options_keep_shapes_and_default_weights():
    plain = MLPDiscriminator((2,), 16, 3, maxout=5)
    options = MLPDiscriminator((2,), 16, 3, maxout=5, pack=2, mbstd=4, sn=True)
    assert plain(torch.randn(8, 2)).shape == (8,) and options(torch.randn(8, 2)).shape == (4,)
    image = DCGANDiscriminator((3, 28, 28), 8)
    assert image(torch.randn(4, 3, 28, 28)).shape == (4,)
    # Without the options, the weights are named as before they existed (older checkpoints still load).
    assert list(plain.state_dict()) == [f"body.{i}.linear.{p}" for i in range(3) for p in ("weight", "bias")] + \
        ["to_logit.weight", "to_logit.bias"]
    assert list(image.state_dict()) == ["body.0.weight", "body.0.bias", "body.2.weight"] + \
        [f"body.3.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")] + \
        ["to_logit.weight", "to_logit.bias"]
    for kw in ({"pack": 2}, {"mbstd": 4}, {"pack": 2, "mbstd": 4, "sn": True, "norm": "none"}):
        d = DCGANDiscriminator((3, 28, 28), 8, **kw)
        assert d(torch.randn(8, 3, 28, 28)).shape == (8 // kw.get("pack", 1),)
    with pytest.raises(ValueError, match="multiple of the PacGAN pack"):
        DCGANDiscriminator((3, 28, 28), 8, pack=2)(torch.randn(3, 3, 28, 28))


# --- the recipes' options, trained ---------------------------------------------------------------------------------


def test_recipe_options_against_collapse_train(tmp_path):
    """Each option builds and runs a few steps: the `dcgan` recipe on stacked MNIST, `gan` with WGAN-GP on 2-D."""
    run = belamy.train(model="dcgan", data="stacked-mnist", steps=2, batch_size=8, out=str(tmp_path), name="dcgan",
                       options={"g_width": 8, "d_width": 8, "latent_dim": 8, "pack": 2, "mbstd": True, "sn": True},
                       loss="hinge", sample_every=0, log_every=1, progress=False)
    assert belamy.load(run.path).sample(2).shape == (2, 3, 28, 28)
    run = belamy.train(model="gan", data="ring8", steps=2, out=str(tmp_path), name="wgan", loss="wasserstein",
                       options={"gp_weight": 10.0, "pack": 2, "mbstd": True}, sample_every=0, log_every=1,
                       progress=False)
    log = (run.path / "log.jsonl").read_text()
    assert '"gp"' in log


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "steps", "quality"),
                         [({}, 800, 0.6), ({"noise": 0.3}, 800, 0.6), ({"r1": 0.1 / 16}, 500, 0.45)],
                         ids=["mbstd", "mbstd-noise", "mbstd-r1"])
def test_gan_with_minibatch_stddev_covers_ring8(tmp_path, extra, steps, quality):
    """Unpacked, with minibatch stddev in D instead, the `gan` recipe finds the ring's modes in a short run (measured
    8/8 and 73% high quality after 800 steps, 62% after 500; chance is ~0.6%); so it does with instance noise over
    the first half of the run (D's blurred view still teaches G sharp modes; 8/8 and 53% after 500 steps), and with R1
    (8/8 and 66% after 500 steps: R1 costs a second backward pass, so this run is the shorter)."""
    run = belamy.train(model="gan", data="ring8", steps=steps, seed=0, options={"pack": 1, "mbstd": True, **extra},
                       out=str(tmp_path), sample_every=0, ckpt_every=0, log_every=500, progress=False)
    ring = open_data("ring8")
    result = mode_coverage(belamy.load(run.path).sample(2500, seed=0), ring.modes, ring.std)
    assert result["modes_covered"] >= 7, result
    assert result["high_quality"] >= quality, result


def test_instance_noise_blurs_what_d_sees_and_decays_to_none():
    """`noise` adds Gaussian noise of that many real-batch stds to D's inputs, decaying linearly to none at
    `noise_until` of the run; the standard D step feeds D through it."""
    grid = open_data("grid25")
    gan = RECIPES.get("gan")
    clean = gan(gan.Options(), grid.info, LOSSES.get("nonsaturating"))
    noisy = gan(gan.Options(noise=0.5, noise_until=0.4), grid.info, LOSSES.get("nonsaturating"))
    noisy.load_state_dict(clean.state_dict())
    real, _ = grid.sample(4096, torch.Generator().manual_seed(0))
    spread = real.std(dim=0).mean()

    def batch(progress: float) -> Batch:
        return Batch(real, None, torch.randn(4096, 2, generator=torch.Generator().manual_seed(2)), None,
                     torch.Generator().manual_seed(1), progress=progress)

    for progress, expected in ((0.0, 0.5), (0.2, 0.25)):
        added = noisy.d_input(real, batch(progress)) - real
        assert float(added.std() / spread) == pytest.approx(expected, rel=0.05)
        assert float(added.mean()) == pytest.approx(0.0, abs=0.05)
    for progress in (0.4, 0.9):
        assert noisy.d_input(real, batch(progress)) is real
    assert clean.d_input(real, batch(0.0)) is real
    assert not torch.equal(noisy.d_step(batch(0.0))["loss"], clean.d_step(batch(0.0))["loss"])
    assert torch.equal(noisy.d_step(batch(0.5))["loss"], clean.d_step(batch(0.5))["loss"])
    for bad in ({"noise": -0.1}, {"noise_until": 0.0}, {"noise_until": 1.5}):
        with pytest.raises(ValueError, match="noise"):
            gan(gan.Options(**bad), grid.info, LOSSES.get("nonsaturating"))


def test_r1_option_penalizes_d_slope_on_real_samples():
    """`r1` adds gamma / 2 * E ||grad_x D(x)||^2 over the real batch to D's loss (Mescheder et al. 2018), logged
    as "r1"; its gradient reaches D's weight matrices (biases do not change a slope), and D's step loss is the
    plain one plus that term."""
    grid = open_data("grid25")
    gan = RECIPES.get("gan")
    plain = gan(gan.Options(mbstd=True), grid.info, LOSSES.get("nonsaturating"))
    r1 = gan(gan.Options(mbstd=True, r1=0.5), grid.info, LOSSES.get("nonsaturating"))
    r1.load_state_dict(plain.state_dict())
    real, _ = grid.sample(64, torch.Generator().manual_seed(0))
    batch = Batch(real, None, torch.randn(64, 2, generator=torch.Generator().manual_seed(2)), None,
                  torch.Generator().manual_seed(1))
    leaf = real.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(plain.D(leaf, None).sum(), leaf)
    expected = 0.25 * slope.square().sum(1).mean()
    out = r1.d_step(batch)
    assert float(out["r1"].detach()) == pytest.approx(float(expected), rel=1e-5) and float(expected) > 0
    assert float(out["loss"].detach()) == pytest.approx(float(plain.d_step(batch)["loss"].detach() + expected),
                                                        rel=1e-5)
    out["r1"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in r1.D.parameters() if p.dim() > 1)
    assert "r1" not in plain.d_step(batch)
    with pytest.raises(ValueError, match="'r1'.*-1"):
        gan(gan.Options(r1=-1.0), grid.info, LOSSES.get("nonsaturating"))

