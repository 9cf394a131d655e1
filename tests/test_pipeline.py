"""belamy.load and the generator pipeline: rebuilt from config.json + safetensors, seeded, batch-size invariant."""

import json

import pytest
import torch

import belamy
from belamy.pipelines import LoadError, slerp

from helpers import TINY_DCGAN


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {
        "dcgan": belamy.train(**TINY_DCGAN, steps=6, ckpt_every=3, out=str(out), name="dcgan"),
        "cgan": belamy.train(**{**TINY_DCGAN, "model": "cgan"}, steps=4, out=str(out), name="cgan"),
    }


def test_sample_is_seeded_and_batch_size_invariant(trained):
    g = belamy.load(trained["dcgan"].path)
    a = g.sample(10, seed=3, batch_size=10)
    b = g.sample(10, seed=3, batch_size=3)
    assert a.shape == (10, 1, 8, 8) and a.min() >= -1 and a.max() <= 1
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, g.sample(10, seed=4))
    images = g.sample_images(3, seed=3)
    assert len(images) == 3 and images[0].size == (8, 8) and images[0].mode == "L"


def test_model_folder_has_no_code_and_rebuilds(trained):
    path = trained["dcgan"].path
    config = json.loads((path / "config.json").read_text())
    assert config["recipe"] == "dcgan" and config["latent_dim"] == 16 and config["data"]["shape"] == [1, 8, 8]
    # The same weights load from the newest checkpoint (a run that is still going) as from the exported model.
    final = belamy.load(path).sample(4, seed=0)
    (path / "config.json").rename(path / "config.json.bak")
    try:
        from_ckpt = belamy.load(path).sample(4, seed=0)
    finally:
        (path / "config.json.bak").rename(path / "config.json")
    assert torch.equal(final, from_ckpt)


def test_class_conditional_sampling(trained):
    g = belamy.load(trained["cgan"].path)
    sevens = g.sample(4, seed=0, class_label=7)
    assert not torch.allclose(sevens, g.sample(4, seed=0, class_label=1))
    assert torch.equal(sevens, g.sample(4, seed=0, class_label="7"))  # by name too
    with pytest.raises(ValueError, match="not one of this model's 10 classes"):
        g.sample(2, class_label=12)
    with pytest.raises(ValueError, match="unconditional"):
        belamy.load(trained["dcgan"].path).sample(2, class_label=3)


def test_interpolation_walks_between_the_two_end_latents(trained):
    g = belamy.load(trained["dcgan"].path)
    walk = g.interpolate(steps=5, seed=0, rows=2)
    assert walk.shape == (10, 1, 8, 8)
    ends = g.latents(4, seed=0)
    assert torch.allclose(walk[0], g.from_latents(ends[:1])[0], atol=1e-5)
    assert torch.allclose(walk[4], g.from_latents(ends[1:2])[0], atol=1e-5)


def test_slerp_stays_on_the_sphere():
    a, b = torch.randn(64), torch.randn(64)
    b = b / b.norm() * a.norm()
    path = slerp(a, b, torch.linspace(0, 1, 7))
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert torch.allclose(path.norm(dim=1), a.norm().expand(7), rtol=1e-4)


def test_load_errors(tmp_path):
    with pytest.raises(LoadError, match="not a folder"):
        belamy.load(tmp_path / "missing")
    with pytest.raises(LoadError, match="neither config.json"):
        belamy.load(tmp_path)
