"""The image-level metrics API and `belamy eval`: every input kind, fingerprints, cached reference statistics,
streaming invariances, and the command end to end on a tiny run. The in-domain classifier is the extractor
throughout (offline, trained once per session in a temporary BELAMY_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import TINY_DCGAN, cli

import belamy
from belamy import metrics
from belamy.data import open_data
from belamy.metrics import FeatureSet, Fingerprint, FingerprintMismatchError, StatsFileError, compute_features, \
    evaluate, load_extractor, load_stats, save_stats
from belamy.metrics.reference import check_comparable
from belamy.metrics.sources import open_source
from belamy.registry import UnknownNameError
from belamy.utils.images import to_pil


@pytest.fixture(scope="module")
def digits():
    return open_data("digits")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return belamy.train(**{**TINY_DCGAN, "steps": 30, "out": str(out), "name": "tiny"}).path


def write_pngs(images: torch.Tensor, folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(to_pil(images.float() / 127.5 - 1)):
        im.save(folder / f"{i:04d}.png")


def test_fid_of_a_set_with_itself_is_zero_and_the_classifier_is_reported():
    r = evaluate("digits", "digits", ("fid", "kid", "pr"))
    assert abs(r["fid"]) < 1e-6 and r["precision"] == 1.0 and r["recall"] == 1.0
    assert r["extractor"]["name"] == "classifier" and r["extractor"]["accuracy"] > 0.9
    assert r["fingerprint"]["real"] == r["fingerprint"]["fake"]
    assert r["fingerprint"]["real"]["n"] == 1797 and r["fingerprint"]["real"]["resizer"] == "clean"
    assert r["settings"]["kid_subset_size"] == 1000
    table = metrics.format_table(r)
    assert "classifier (accuracy 0." in table and "resizer=clean" in table and "extractor=classifier" in table


def test_every_input_kind_gives_the_same_number(digits, tmp_path, tiny_run):
    images = digits.images[:300]
    reference = metrics.fid("digits", images)  # a uint8 tensor
    assert reference > 0
    assert metrics.fid("digits", images.float() / 127.5 - 1) == pytest.approx(reference, abs=1e-9)  # [-1, 1]
    assert metrics.fid("digits", images.numpy()) == pytest.approx(reference, abs=1e-9)  # a numpy image array
    write_pngs(images, tmp_path / "pngs")
    assert metrics.fid("digits", tmp_path / "pngs") == pytest.approx(reference, abs=1e-9)  # a folder

    real = compute_features("digits")  # reference statistics (cached), with fingerprint
    fake = compute_features(images, load_extractor("classifier", data="digits"))  # the same classifier
    assert fake.fingerprint.weights_sha256 == real.fingerprint.weights_sha256
    assert metrics.fid(real.features, fake.features) == pytest.approx(reference, rel=1e-9)  # feature arrays
    assert metrics.fid(real, fake) == pytest.approx(reference, rel=1e-9)  # FeatureSets
    save_stats(tmp_path / "real.npz", real)
    assert metrics.fid(tmp_path / "real.npz", images) == pytest.approx(reference, rel=1e-9)  # a stats file

    g = belamy.load(tiny_run)
    by_pipeline = metrics.fid("digits", g, n=200)
    assert by_pipeline == pytest.approx(metrics.fid("digits", tiny_run, n=200), abs=1e-9)  # a run folder
    assert by_pipeline == pytest.approx(metrics.fid("digits", g.sample(200, seed=0)), abs=1e-9)


def test_all_metrics_from_a_custom_stats_file(digits, tmp_path):
    real = compute_features("digits")
    save_stats(tmp_path / "mine.npz", real)
    fake = digits.images[-400:]
    r = evaluate(tmp_path / "mine.npz", fake, ("fid", "kid", "pr", "dc", "is"))  # the extractor: the file's own
    direct = evaluate("digits", fake, ("fid", "kid", "pr", "dc", "is"))
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "is"):
        assert r[key] == pytest.approx(direct[key], rel=1e-9, abs=1e-12), key
    assert r["extractor"]["accuracy"] == direct["extractor"]["accuracy"]


def test_npz_round_trip_and_files_from_other_tools(tmp_path):
    stats = compute_features("digits")
    path = save_stats(tmp_path / "digits.npz", stats)
    back = load_stats(path)
    assert back.fingerprint == stats.fingerprint and back.extractor == stats.extractor
    for key in ("features", "logits", "mu", "sigma"):
        assert np.array_equal(getattr(back, key), getattr(stats, key)), key

    # pytorch-fid / clean-fid files hold mu and sigma only: FID works, the fingerprint is unknown, KID explains.
    np.savez(tmp_path / "other.npz", mu=stats.mu, sigma=stats.sigma)
    other = load_stats(tmp_path / "other.npz")
    assert not other.fingerprint.known and other.fingerprint.feature_dim == 128
    assert metrics.fid(tmp_path / "other.npz", stats) == pytest.approx(0, abs=1e-6)
    with pytest.raises(StatsFileError, match="holds only mu and sigma"):
        metrics.kid(tmp_path / "other.npz", stats)

    np.savez(tmp_path / "pickled.npz", mu=np.array([object()], dtype=object), sigma=np.eye(1))
    with pytest.raises(StatsFileError, match="cannot be read"):  # never unpickled
        load_stats(tmp_path / "pickled.npz")


def test_fingerprint_mismatch_is_an_error_naming_the_fields(digits, tmp_path):
    base = Fingerprint("digits", "train", 1797, 8, "clean", "classifier", "ab" * 32, 128)
    other = Fingerprint("run:x", "samples seed=0", 100, 8, "legacy", "classifier", "cd" * 32, 128)
    with pytest.raises(FingerprintMismatchError) as e:
        check_comparable(other, base)
    assert "resizer: fake 'legacy' vs real 'clean'" in str(e.value) and "weights_sha256" in str(e.value)
    assert "dataset" not in str(e.value)  # data set, split and count may differ between the sides
    check_comparable(Fingerprint(feature_dim=128), base)  # unknown fields are not compared

    # A reference file made with the other resizer is refused, not compared.
    stats = compute_features("digits")
    save_stats(tmp_path / "legacy.npz", FeatureSet(Fingerprint(**{**stats.fingerprint.to_json(),
                                                                  "resizer": "legacy"}),
                                                   stats.features, extractor=stats.extractor))
    with pytest.raises(FingerprintMismatchError, match="resizer"):
        metrics.fid(tmp_path / "legacy.npz", digits.images[:100], extractor="classifier", resizer="clean",
                    resolution=8)


def test_reference_statistics_are_cached_with_their_fingerprint(belamy_home):
    first = compute_features("digits")
    files = list((belamy_home / "stats").glob("digits-classifier-*.npz"))
    assert len(files) == 1 and first.source == str(files[0])
    mtime = files[0].stat().st_mtime_ns
    again = compute_features("digits")
    assert files[0].stat().st_mtime_ns == mtime and np.array_equal(again.features, first.features)
    legacy = compute_features("digits", resizer="legacy")  # another fingerprint: another file
    assert legacy.fingerprint.resizer == "legacy"
    assert len(list((belamy_home / "stats").glob("digits-classifier-*.npz"))) == 2


def test_streaming_does_not_depend_on_batch_size(tiny_run):
    g = belamy.load(tiny_run)
    src = open_source(g, n=37, seed=3)
    streamed = torch.cat(list(src.batches(8, 1)))
    assert torch.equal(streamed, g.sample(37, seed=3))  # the same images as sample(), batch by batch
    a = evaluate("digits", g, ("fid", "kid"), n=150, batch_size=7)
    b = evaluate("digits", g, ("fid", "kid"), n=150, batch_size=150)
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-6) and a["kid"] == pytest.approx(b["kid"], rel=1e-5, abs=1e-9)


def test_bad_names_and_inputs_are_clear_errors(digits):
    with pytest.raises(UnknownNameError, match="Did you mean 'fid'"):
        evaluate("digits", digits.images[:10], ("fdi",))
    with pytest.raises(UnknownNameError, match="Did you mean 'classifier'"):
        evaluate("digits", digits.images[:10], ("fid",), extractor="clasifier")
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        metrics.fid("digits", digits.images[:10].float())  # 0..255 floats: ambiguous, refused
    with pytest.raises(ValueError, match="not images"):
        metrics.fid("digits", "ring8")
    with pytest.raises(ValueError, match="Did you mean 'digits'"):
        metrics.fid("digist", digits.images[:10])


def belamy_cli(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BELAMY_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "belamy", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_eval_command_on_a_run(tiny_run, belamy_home):
    compute_features("digits")  # the classifier and reference statistics exist: the command reuses them
    r = belamy_cli("eval", str(tiny_run), "--metrics", "fid,kid,is,pr,dc", "--n", "200", "--no-progress",
                   home=belamy_home)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tiny_run / "metrics.json").read_text())
    for key in ("fid", "kid", "is", "precision", "recall", "density", "coverage"):
        assert isinstance(saved[key], float), key
    assert saved["real"] == "digits" and saved["fingerprint"]["fake"]["n"] == 200
    assert saved["extractor"]["name"] == "classifier" and saved["extractor"]["accuracy"] > 0.9
    assert "classifier (accuracy" in r.stdout and "real: " in r.stdout and "dataset=run:tiny" in r.stdout
    assert "metrics.json" in r.stdout


def test_eval_command_compares_any_two_sets(digits, tmp_path, belamy_home, monkeypatch):
    write_pngs(digits.images[:120], tmp_path / "fake")
    r = belamy_cli("eval", "--real", "digits", "--fake", str(tmp_path / "fake"), "--metrics", "fid,pr",
                   "--no-progress", "--out", str(tmp_path / "m.json"), home=belamy_home)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m.json").read_text())["fingerprint"]["fake"]["n"] == 120
    assert "FID" in r.stdout and "precision" in r.stdout
    monkeypatch.setenv("BELAMY_HOME", str(tmp_path / "empty-home"))  # in-process: the same main(), no torch import
    r = cli("eval", "--real", "digits", "--fake", str(tmp_path / "fake"), "--extractor", "inception")
    assert r.returncode == 1 and "never downloads" in r.stderr and "Traceback" not in r.stderr


def test_folders_labeled_and_with_bad_files(digits, tmp_path):
    for label in (0, 1):
        write_pngs(digits.images[digits.labels == label][:20], tmp_path / "labeled" / str(label))
    src = open_source(tmp_path / "labeled")
    assert src.num_classes == 2 and src.resolution == 8  # read at the files' own size
    labeled = src.labeled()
    assert len(labeled) == 40 and set(labeled.labels.tolist()) == {0, 1}  # what the classifier would learn from

    write_pngs(digits.images[:30], tmp_path / "fake")
    (tmp_path / "fake" / "broken.png").write_bytes(b"not a png")
    tiny = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    r = evaluate(digits.images[30:60], tmp_path / "fake", ("fid",), extractor=tiny)
    assert r["fingerprint"]["fake"]["n"] == 30 and r["extractor"]["name"] == "Sequential"
    assert len(r["skipped_files"]["fake"]) == 1 and "broken.png" in r["skipped_files"]["fake"][0]
    assert "could not be decoded" in metrics.format_table(r)
