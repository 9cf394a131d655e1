"""Each recipe trains briefly on real digits and learning is asserted with an in-domain classifier:
samples must be recognized (confidence), spread over the classes (coverage, KL to uniform), and for the
class-conditional recipe, be of the class asked for."""

import pytest
import torch

import belamy
from belamy.data import open_data
from belamy.metrics.classifier import classifier_frechet_distance, classify_samples

WIDTHS = {"g_width": 32, "d_width": 32}


def _train(tmp_path, **kw):
    return belamy.train(out=str(tmp_path), progress=False, sample_every=0, log_every=100, **kw)


def _untrained(tmp_path, model, data, **kw):
    """The same recipe after a single step: the baseline the trained model must beat."""
    return belamy.load(_train(tmp_path, model=model, data=data, steps=1, name="untrained", **kw).path)


def _real(name: str, n: int = 1000):
    return open_data(name).images[torch.randperm(len(open_data(name)), generator=torch.Generator().manual_seed(0))[:n]
                                  ].float() / 127.5 - 1


# dcgan's learning is asserted on MNIST below (test_dcgan_learns_mnist), with the same criteria
# Short runs with settings that learn fast on 8x8 digits (measured, FD after / before: wgan-gp 0.17, sngan 0.17);
# the recipes' defaults (5 D steps; wgan-gp's lr 1e-4) need several times longer.
@pytest.mark.parametrize("model,steps,extra", [
    ("wgan-gp", 300, {"d_steps": 3, "lr_g": 3e-4, "lr_d": 3e-4}),
    ("sngan", 200, {"d_steps": 1}),
])
def test_unconditional_recipes_learn_digits(tmp_path, digits_classifier, model, steps, extra):
    """The in-domain Frechet distance to real digits must fall to under half the untrained model's."""
    real = _real("digits")
    untrained = _untrained(tmp_path, model, "digits", options=WIDTHS, **extra).sample(1000, seed=1)
    run = _train(tmp_path, model=model, data="digits", steps=steps, options=WIDTHS, name="trained", **extra)
    samples = belamy.load(run.path).sample(1000, seed=1)
    before = classifier_frechet_distance(digits_classifier, real, untrained)
    after = classifier_frechet_distance(digits_classifier, real, samples)
    assert after < 0.5 * before, (before, after)
    coverage = classify_samples(digits_classifier, samples)
    assert coverage["classes_covered"] >= 8, coverage


@pytest.mark.parametrize("condition", ["projection", "concat"])
def test_cgan_generates_the_class_asked_for(tmp_path, digits_classifier, condition):
    # measured after 800 steps: 97% of samples of the class asked for (projection), 86% (concat)
    run = _train(tmp_path, model="cgan", data="digits", steps=800, name=condition,
                 options={**WIDTHS, "condition": condition})
    g = belamy.load(run.path)
    assert g.num_classes == 10
    accuracy = sum((digits_classifier(g.sample(100, seed=2, class_label=k)).argmax(1) == k).float().mean().item()
                   for k in range(10)) / 10
    assert accuracy > 0.7, accuracy  # chance is 0.1


def test_dcgan_learns_mnist(tmp_path, mnist_classifier):
    options = {"latent_dim": 64, "g_width": 32, "d_width": 32}
    real = _real("mnist")
    untrained = _untrained(tmp_path, "dcgan", "mnist", options=options).sample(1000)
    # 150 steps at twice the default rates, measured: FD 893 -> 306, 10 classes, KL 0.19 (200 steps: FD 173; at
    # the default rates, 150 steps only halve the FD)
    run = _train(tmp_path, model="dcgan", data="mnist", steps=150, lr_g=4e-4, lr_d=4e-4, options=options,
                 name="mnist")
    samples = belamy.load(run.path).sample(1000)
    before = classifier_frechet_distance(mnist_classifier, real, untrained)
    after = classifier_frechet_distance(mnist_classifier, real, samples)
    assert after < 0.5 * before, (before, after)
    coverage = classify_samples(mnist_classifier, samples)
    assert coverage["classes_covered"] >= 9 and coverage["kl_uniform"] < 0.3, coverage
