"""The `belamy` command end to end, in a subprocess as a person runs it."""

import os
import subprocess
import sys

from PIL import Image

from helpers import cli


def belamy(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "belamy", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_train_sample_interpolate(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: dcgan\ndata: digits\nbatch_size: 32\nsteps: 50\noptions:\n  g_width: 16\n")
    r = belamy("train", "--config", str(config), "--steps", "8", "-o", "d_width=16", "--sample-every", "4",
               "--out", str(tmp_path / "runs"), "--name", "cli", "--no-progress")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "cli"
    assert f"run:         {run}" in r.stdout and "samples.png" in r.stdout
    saved = (run / "config.yaml").read_text()
    assert "steps: 8" in saved and "g_width: 16" in saved and "d_width: 16" in saved  # file + flags merged

    r = belamy("sample", str(run), "--n", "12", "--seed", "1", "--out", str(tmp_path / "grid.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "grid.png").info["seed"] == "1"  # provenance in PNG text
    # The rest in-process (the same main() without a second torch import each): the processes above are the user's.
    r = cli("sample", str(run), "--n", "3", "--out-dir", str(tmp_path / "many"))
    assert r.returncode == 0 and len(list((tmp_path / "many").glob("*.png"))) == 3
    r = cli("interpolate", str(run), "--steps", "6", "--rows", "2", "--out", str(tmp_path / "walk.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "walk.png").size == (6 * 10 + 2, 2 * 10 + 2)

    r = cli("train", "--resume", str(run), "--steps", "10", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "step-0000010" in {p.name for p in (run / "checkpoints").iterdir()}


def test_listing_commands():
    r = belamy("models")
    assert r.returncode == 0
    assert [line.split()[0] for line in r.stdout.splitlines()] == [
        "cgan", "cyclegan", "dcgan", "gan", "inpaint", "pix2pix", "sngan", "srgan", "text2img", "wgan-gp"]
    assert "gp_weight=10.0" in cli("models", "--verbose").stdout
    r = cli("datasets")
    assert {"mnist", "digits", "ring8", "grid25", "shapes", "edges2mnist", "mnist-strokes"} <= \
        {line.split()[0] for line in r.stdout.splitlines()}


def test_errors_are_one_clear_line(tmp_path):
    cases = [
        (("train", "--model", "dcgna"), "Did you mean 'dcgan'?"),
        (("train", "--data", "mnsit"), "Did you mean 'mnist'?"),
        (("train", "--data", str(tmp_path / "nowhere")), "nowhere"),
        (("train", "--model", "dcgan", "--data", "ring8"), "needs image data"),
        (("train", "-o", "widht=3"), "has no option(s) widht"),
        (("train", "--config", str(tmp_path / "none.yaml")), "does not exist"),
        (("sample", str(tmp_path)), "neither config.json"),
    ]
    for i, (args, message) in enumerate(cases):
        run = belamy if i == 0 else cli  # one real process (its stderr as a user sees it); the rest in-process
        r = run(*args, "--out", str(tmp_path / "runs")) if args[0] == "train" else run(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
