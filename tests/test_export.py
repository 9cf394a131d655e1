"""Export: ONNX files that onnxruntime runs with the same numbers as PyTorch (any batch), and portable model folders
with a model card that belamy.load reads back."""

import json
import warnings

import numpy as np
import pytest
import torch

import belamy
from belamy.export import export_onnx
from belamy.text import TextEncoder

from helpers import cli, same_tensors, tensors

onnxruntime = pytest.importorskip("onnxruntime")

QUIET = {"progress": False, "sample_every": 0, "log_every": 1, "ckpt_every": 0}
RUNS = {  # two steps each: enough to move the weights (and batch-norm statistics) away from their initial values
    "dcgan": {"model": "dcgan", "data": "digits", "options": {"latent_dim": 16, "g_width": 16, "d_width": 16}},
    "cgan": {"model": "cgan", "data": "digits", "options": {"latent_dim": 16, "g_width": 16, "d_width": 16}},
    "text2img": {"model": "text2img", "data": "shapes", "batch_size": 8,
                 "options": {"g_width": 8, "d_width": 8, "embed_dim": 16, "hidden_dim": 16, "latent_dim": 16,
                             "cond_dim": 16, "text_encoder": "scratch", "max_length": 12}},
    "cyclegan": {"model": "cyclegan", "data": "mnist-strokes", "batch_size": 4,
                 "options": {"width": 8, "d_width": 8, "blocks": 1}},
    "inpaint": {"model": "inpaint", "data": "mnist", "resolution": 32, "batch_size": 4,
                "options": {"width": 8, "d_width": 8}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {name: belamy.train(**kw, steps=2, out=str(out), name=name, **QUIET).path for name, kw in RUNS.items()}


def _onnx(session, **feed):
    return session.run(None, {k: v.numpy() for k, v in feed.items()})[0]


def test_onnx_matches_pytorch_for_every_kind_of_generator(runs, tmp_path):
    g = torch.Generator().manual_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reports = {name: export_onnx(belamy.load(runs[name]), tmp_path / f"{name}.onnx",
                                     direction="BtoA" if name == "cyclegan" else None) for name in RUNS}
    assert all(r["max_abs_error"] <= 1e-4 for r in reports.values()), reports
    assert reports["cgan"]["inputs"] == {"z": [2, 16], "labels": [2]}
    assert reports["text2img"]["inputs"] == {"z": [2, 16], "tokens": [2, 12]}

    def session(name):
        return onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])

    # Checked here too, against the pipelines' own entry points, at a batch size the export never saw.
    z = torch.randn(7, 16, generator=g)
    dcgan = belamy.load(runs["dcgan"])
    assert np.abs(_onnx(session("dcgan"), z=z) - dcgan.from_latents(z).numpy()).max() < 1e-4
    cgan, labels = belamy.load(runs["cgan"]), torch.arange(7) % 10
    assert np.abs(_onnx(session("cgan"), z=z, labels=labels) - cgan.from_latents(z, labels).numpy()).max() < 1e-4

    text = belamy.load(runs["text2img"])
    tokens = text.tokenizer.encode_batch(["a red circle on a blue background"] * 6 + ["star"], 12)
    tokens = torch.nn.functional.pad(tokens, (0, 12 - tokens.shape[1]))  # the graph takes max_length ids, padded
    expected = text.from_latents(z, tokens).numpy()  # captions of several lengths: padding handled as trained
    assert np.abs(_onnx(session("text2img"), z=z, tokens=tokens) - expected).max() < 1e-4

    cycle, image = belamy.load(runs["cyclegan"]), torch.rand(3, 1, 32, 32, generator=g) * 2 - 1
    expected = cycle.translate(image, direction="BtoA").numpy()
    assert np.abs(_onnx(session("cyclegan"), image=image) - expected).max() < 1e-4

    inpaint, mask = belamy.load(runs["inpaint"]), torch.zeros(3, 1, 32, 32)
    mask[:, :, 8:20, 4:28] = 1
    out = _onnx(session("inpaint"), image=image, mask=mask)
    assert np.abs(out - inpaint.inpaint(image, mask).numpy()).max() < 1e-4
    assert np.array_equal(out[:, :, :8], image[:, :, :8].numpy())  # outside the hole: the input, exactly

    meta = json.loads((tmp_path / "text2img.json").read_text())
    assert meta["model"]["data"]["vocabulary"] == list(text.data.vocabulary)  # enough to tokenize elsewhere


def test_unrolled_text_encoder_equals_the_packed_one():
    encoder = TextEncoder(30, 16, 16).eval()
    tokens = torch.randint(2, 30, (5, 10), generator=torch.Generator().manual_seed(0))
    tokens[0, 3:], tokens[1, :], tokens[2, 9:] = 0, 0, 0  # short, empty (counts as one PAD) and long captions
    (words, sentence), (words_u, sentence_u) = encoder(tokens), encoder.forward_unrolled(tokens)
    assert (words - words_u).abs().max() < 1e-5 and (sentence - sentence_u).abs().max() < 1e-5
    assert words_u[0, 3:].abs().max() == 0  # zero at padding, as pad_packed_sequence gives


def test_export_command_and_model_folder(runs, tmp_path):
    r = cli("export", str(runs["dcgan"]), "--out", str(tmp_path / "g.onnx"))
    assert r.returncode == 0 and "max abs error" in r.stdout, r.stderr
    r = cli("export", str(runs["dcgan"]), "--out", str(tmp_path / "g2.onnx"), "--direction", "AtoB")
    assert r.returncode == 1 and "--direction applies to image-to-image models" in r.stderr

    folder = tmp_path / "portable"
    r = cli("export", str(runs["cgan"]), "--format", "folder", "--out", str(folder))
    assert r.returncode == 0, r.stderr
    assert same_tensors(tensors(folder / "model.safetensors"), tensors(runs["cgan"] / "model.safetensors"))
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: belamy") and "pipeline_tag: unconditional-image-generation" in card
    assert "data set: `digits`" in card and "steps: 2" in card and "![samples](samples.png)" in card
    moved = belamy.load(folder)
    assert torch.equal(moved.sample(4, seed=1, class_label=3), belamy.load(runs["cgan"]).sample(4, seed=1,
                                                                                                class_label=3))
    r = cli("export", str(runs["text2img"]), "--format", "folder", "--out", str(tmp_path / "t"))
    assert r.returncode == 0 and "pipeline_tag: text-to-image" in (tmp_path / "t" / "README.md").read_text()

    r = cli("push", str(tmp_path), "--repo", "someone/model")
    assert r.returncode == 1 and "is not a model folder" in r.stderr
