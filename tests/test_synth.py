"""Synthetic data for augmentation: `belamy synth` writes a labeled folder belamy reads back, and the Classification
Accuracy Score (a classifier trained only on samples, tested on real images) tells a learned model from an untrained
one."""

import csv
import json

import pytest

import belamy
from belamy.data import open_data
from belamy.metrics.cas import classification_accuracy_score
from belamy.provenance import read_provenance

from helpers import cli

CGAN = {"model": "cgan", "data": "digits", "options": {"latent_dim": 16, "g_width": 16, "d_width": 16},
        "batch_size": 64, "progress": False, "sample_every": 0, "log_every": 100, "ckpt_every": 0}


@pytest.fixture(scope="module")
def cgan_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    trained = belamy.train(**CGAN, steps=600, out=str(out), name="cgan")
    untrained = belamy.train(**CGAN, steps=1, out=str(out), name="cgan-1-step")
    return trained.path, untrained.path


def test_cas_tells_a_trained_conditional_model_from_an_untrained_one(cgan_runs):
    """Measured: 0.88 after 600 steps, 0.15 after one step (chance 0.10), 100 samples per class."""
    trained, untrained = (classification_accuracy_score(belamy.load(p), "digits", n_per_class=100) for p in cgan_runs)
    assert trained["cas"] > 0.6 and untrained["cas"] < 0.3, (trained, untrained)
    assert trained["n_synthetic"] == 1000 and trained["n_real_test"] == 1797 and trained["chance"] == 0.1


def test_synth_writes_a_labeled_folder_that_trains(cgan_runs, tmp_path):
    out = tmp_path / "synthetic"
    r = cli("synth", str(cgan_runs[0]), "--n-per-class", "12", "--out", str(out), "--seed", "3")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 120 and {r["class"] for r in rows} == {str(k) for k in range(10)}
    first = rows[12]  # class 1's first image: seed 3 + 1
    assert first["file"] == "1/000004-00000.png" and first["label"] == "1" and first["condition"] == "class 1"
    meta = read_provenance(out / first["file"])
    assert meta["generator"] == "belamy" and meta["seed"] == "4" and meta["condition"] == "class 1"

    data = open_data(str(out))  # class subfolders: a labeled set
    assert len(data) == 120 and data.info.num_classes == 10
    run = belamy.train(**{**CGAN, "data": str(out), "batch_size": 16}, resolution=8, steps=2, out=str(tmp_path),
                       name="on-synth")
    assert (run.path / "model.safetensors").is_file()

    r = cli("synth", str(cgan_runs[0]), "--n-per-class", "2", "--out", str(out))
    assert r.returncode == 1 and "is not empty" in r.stderr
    (cgan_runs[0] / "metrics.json").write_text('{"fid": 12.5}')  # as an earlier belamy eval would leave it
    r = cli("eval", str(cgan_runs[0]), "--cas", "--real", "digits", "--n-per-class", "30")
    assert r.returncode == 0 and "CAS (trained on synthetic)" in r.stdout, r.stderr
    metrics = json.loads((cgan_runs[0] / "metrics.json").read_text())
    assert metrics["fid"] == 12.5 and metrics["cas"]["n_synthetic"] == 300
    assert "holds these real test images" in r.stdout  # trained on all of digits: said, not hidden


def test_synth_refuses_models_without_classes_and_takes_prompts_for_text_models(tmp_path):
    dcgan = belamy.train(**{**CGAN, "model": "dcgan"}, steps=1, out=str(tmp_path), name="dcgan")
    r = cli("synth", str(dcgan.path), "--out", str(tmp_path / "s"), "--n-per-class", "2")
    assert r.returncode == 1 and "not class-conditional" in r.stderr

    text = belamy.train(model="text2img", data="shapes", steps=1, batch_size=8, out=str(tmp_path), name="t2i",
                        options={"g_width": 8, "d_width": 8, "embed_dim": 16, "hidden_dim": 16, "latent_dim": 16,
                                 "cond_dim": 16, "text_encoder": "scratch"}, progress=False, sample_every=0)
    r = cli("synth", str(text.path), "--out", str(tmp_path / "shapes"), "--n-per-class", "2",
            "--prompt", "star=a large yellow star on a black background")
    assert r.returncode == 0, r.stderr
    rows = {r["class"]: r["condition"] for r in csv.DictReader(open(tmp_path / "shapes" / "manifest.csv"))}
    assert rows["star"] == "a large yellow star on a black background" and rows["circle"] == "a circle"
    r = cli("synth", str(text.path), "--out", str(tmp_path / "x"), "--prompt", "dragon=a dragon")
    assert r.returncode == 1 and "dragon" in r.stderr and "classes: " in r.stderr
