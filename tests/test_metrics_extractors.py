"""Feature extractors: the FID Inception-v3 architecture and its weight loading (random weights the tests make
themselves: nothing is downloaded), the resizers, the cached in-domain classifier, custom modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from belamy.data import open_data
from belamy.data.base import DataInfo, ImageSet
from belamy.metrics import evaluate, load_extractor
from belamy.metrics.classifier import data_sha256
from belamy.metrics.extractors import ExtractorError, FIDInceptionV3, MissingWeightsError, resize_images
from belamy.metrics.extractors.base import match_channels, to_uint8_range
from belamy.metrics.extractors.inception import WEIGHTS_FILE, WEIGHTS_URL


@pytest.fixture(scope="module")
def inception_files(tmp_path_factory):
    """Random FID-Inception weights saved as .pth and .safetensors. Kaiming (fan-in, ReLU) init keeps activations
    of order 1 through the 94 layers, so features of different images differ measurably."""
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    folder = tmp_path_factory.mktemp("inception")
    pth, st = folder / WEIGHTS_FILE, folder / "inception.safetensors"
    torch.save(state, pth)
    save_file(state, str(st))
    return pth, st


def test_inception_architecture_matches_the_standard_state_dict():
    net = FIDInceptionV3()
    state = net.state_dict()
    # torchvision's Inception-v3 has 27,161,264 parameters; without AuxLogits (3,326,696) and with 1008 instead of
    # 1000 classes (+8 * 2049) that is the FID network's count.
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6b.branch7x7dbl_5.conv.weight"].shape == (192, 128, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert not any(k.startswith("AuxLogits") for k in state)


def test_inception_loads_by_path_and_through_belamy_home(inception_files, belamy_home, monkeypatch, tmp_path):
    pth, st = inception_files
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    by_path = load_extractor("inception", weights=pth)
    features, logits = by_path(images)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(features).all() and (features[0] - features[1]).abs().max() > 1e-3
    assert by_path.info()["weights_file"] == str(pth)

    # BELAMY_HOME/weights/ with the .safetensors form only: found without --weights, same tensors, same hash.
    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "pt_inception-2015-12-05-6726825d.safetensors").symlink_to(st)
    monkeypatch.setenv("BELAMY_HOME", str(home))
    from_home = load_extractor("inception")
    assert from_home.weights_sha256 == by_path.weights_sha256
    assert from_home.info()["weights_file"].endswith(".safetensors")
    assert torch.equal(from_home.net.fc.weight, by_path.net.fc.weight)


def test_inception_through_the_api(inception_files):
    """FID and IS with the Inception extractor end to end on a handful of images (299x299 is slow on a CPU)."""
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=g)
    fake = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8, generator=g)  # gray: repeated to RGB
    from belamy.metrics import MetricSettings

    r = evaluate(real, fake, ("fid", "is"), "inception", weights=inception_files[0],
                 settings=MetricSettings(is_splits=1))
    assert r["fid"] > 0 and r["is"] >= 1.0
    assert r["extractor"]["name"] == "inception" and r["extractor"]["resizer"] == "clean"
    assert r["fingerprint"]["fake"]["feature_dim"] == 2048 and r["fingerprint"]["real"]["resolution"] == 16


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("BELAMY_HOME", str(tmp_path / "home"))
    with pytest.raises(MissingWeightsError) as e:
        load_extractor("inception")
    message = str(e.value)
    assert str(tmp_path / "home" / "weights" / WEIGHTS_FILE) in message
    assert WEIGHTS_URL in message and "--weights" in message and "never downloads" in message
    assert isinstance(e.value, ValueError)  # the CLI reports it as one line
    with pytest.raises(MissingWeightsError, match="nowhere.pth"):
        load_extractor("inception", weights=tmp_path / "nowhere.pth")


class NotWeights:
    pass


def test_weights_files_are_never_unpickled_as_code(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": NotWeights()}, evil)  # an arbitrary object: torch.load(weights_only=True) refuses
    with pytest.raises(ExtractorError, match="cannot be read as weights"):
        load_extractor("inception", weights=evil)
    partial = tmp_path / "partial.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, partial)
    with pytest.raises(ExtractorError, match="does not fit"):
        load_extractor("inception", weights=partial)


def test_resizers_differ_and_are_deterministic():
    x = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8).float()
    clean, legacy = resize_images(x, 299, "clean"), resize_images(x, 299, "legacy")
    assert clean.shape == legacy.shape == (2, 3, 299, 299)
    assert (clean - legacy).abs().max() > 1.0
    assert torch.equal(clean, resize_images(x, 299, "clean")) and torch.equal(legacy, resize_images(x, 299, "legacy"))
    assert 0 <= clean.min() and clean.max() <= 255
    # "clean" is clean-fid's resizer: PIL bicubic on float pixels, one channel at a time.
    pil = np.asarray(Image.fromarray(x[0, 0].numpy(), mode="F").resize((299, 299), Image.BICUBIC)).clip(0, 255)
    assert np.abs(clean[0, 0].numpy() - pil).max() < 5e-3
    down = torch.rand(1, 1, 64, 64) * 255  # shrinking: antialiasing is what tells them apart most
    assert (resize_images(down, 8, "clean") - resize_images(down, 8, "legacy")).abs().mean() > 1.0
    assert resize_images(x, 28, "legacy") is x  # already the right size: untouched
    with pytest.raises(ValueError, match="valid resizers"):
        resize_images(x, 299, "nearest")


def test_images_are_quantized_and_channels_matched():
    u8 = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    as_float = u8.float() / 127.5 - 1 + 1e-3  # a generator's output, a little off the pixel grid
    assert torch.equal(to_uint8_range(as_float), u8.float())  # quantized like a saved PNG
    rgb = match_channels(u8.float(), 3)
    assert rgb.shape == (4, 3, 8, 8) and torch.equal(rgb[:, 2], u8.float()[:, 0])
    assert torch.allclose(match_channels(rgb, 1), u8.float(), atol=1e-4)


def test_any_module_is_an_extractor():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    ext = load_extractor(net)
    features, logits = ext(torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8))
    assert features.shape == (6, 5) and logits is None
    assert ext.name == "Sequential" and ext.weights_sha256 == load_extractor(net).weights_sha256
    with pytest.raises(ValueError, match=r"\[6, D\]"):
        load_extractor(nn.Identity())(torch.zeros(6, 3, 8, 8))


def test_classifier_is_cached_and_reports_its_accuracy(belamy_home):
    first = load_extractor("classifier", data="digits")
    assert first.accuracy > 0.9 and first.trained_on == "digits"
    weights = belamy_home / "classifiers"
    files = sorted(weights.glob("digits-*.safetensors"))
    assert len(files) == 1 and files[0].with_suffix(".json").is_file()
    mtime = files[0].stat().st_mtime_ns
    second = load_extractor("classifier", data="digits")
    assert second.details["cached"] is True  # loaded, not trained again
    assert files[0].stat().st_mtime_ns == mtime
    assert second.weights_sha256 == first.weights_sha256 and second.accuracy == first.accuracy
    features, logits = second(open_data("digits").images[:5])
    assert features.shape == (5, 128) and logits.shape == (5, 10)


def test_classifier_cache_key_follows_the_data():
    data = open_data("digits")
    changed = ImageSet(data.info, data.images.clone(), data.labels.clone())
    assert data_sha256(changed) == data_sha256(data)
    changed.labels[0] = (changed.labels[0] + 1) % 10
    assert data_sha256(changed) != data_sha256(data)
    unlabeled = ImageSet(DataInfo("faces", (1, 8, 8)), data.images[:10], torch.full((10,), -1))
    with pytest.raises(ExtractorError, match="has no labels"):
        load_extractor("classifier", data=unlabeled, data_name="faces")
