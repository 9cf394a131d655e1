"""The engine: reproducibility, exact resume after SIGKILL, checkpoints, logs, divergence, bad data."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

import belamy
from belamy.config import ConfigError
from belamy.data.base import DataError
from belamy.recipes import RECIPES
from belamy.recipes.dcgan import DCGAN
from belamy.train import TrainingDiverged
from belamy.train.checkpoint import list_checkpoints, load_checkpoint

from helpers import TINY_DCGAN, same_tensors, tensors


def test_same_seed_same_weights_different_seed_different(tmp_path):
    runs = [belamy.train(**TINY_DCGAN, steps=12, seed=s, out=str(tmp_path), name=f"r{i}")
            for i, s in enumerate((1, 1, 2))]
    weights = [tensors(r.path / "model.safetensors") for r in runs]
    assert same_tensors(weights[0], weights[1])
    assert not same_tensors(weights[0], weights[2])


def test_run_folder_contents_and_logs(tmp_path):
    run = belamy.train(**{**TINY_DCGAN, "sample_every": 10}, steps=20, ckpt_every=5, keep_ckpts=2,
                       out=str(tmp_path), name="r")
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "log.jsonl", "samples.png", "samples", "checkpoints", "model.safetensors",
            "config.json"} <= names
    assert [p.name for p in list_checkpoints(run.path / "checkpoints")] == ["step-0000015", "step-0000020"]
    assert (run.path / "samples" / "step-0000010.png").is_file()
    records = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss_d" in r]
    assert [r["step"] for r in steps] == [10, 20]
    for key in ("loss_g", "loss_d", "d_real", "d_fake", "img_per_s"):
        assert all(isinstance(r[key], float) for r in steps), key
    assert 0 < steps[-1]["d_real"] < 1 and 0 < steps[-1]["d_fake"] < 1  # probabilities for the logistic loss
    saved = belamy.config.TrainConfig.load(run.path / "config.yaml")
    assert saved.loss == "nonsaturating" and saved.betas == (0.5, 0.999)  # resolved, not left to defaults
    grid = Image.open(run.path / "samples.png")
    assert grid.size == (8 * 10 + 2, 8 * 10 + 2)  # 64 fixed latents, 8x8 images, 2-pixel padding


def test_existing_run_folder_is_protected(tmp_path):
    belamy.train(**TINY_DCGAN, steps=2, out=str(tmp_path), name="r")
    with pytest.raises(ConfigError, match="already exists.*--resume"):
        belamy.train(**TINY_DCGAN, steps=2, out=str(tmp_path), name="r")
    unnamed = [belamy.train(**{**TINY_DCGAN, "steps": 2}, out=str(tmp_path)) for _ in range(2)]
    assert [r.path.name for r in unnamed] == ["dcgan-digits", "dcgan-digits-2"]
    with pytest.raises(ConfigError, match="cannot change: lr_g"):
        belamy.train(resume=tmp_path / "r", lr_g=0.1, progress=False)


def test_epochs_set_the_number_of_steps(tmp_path):
    run = belamy.train(**TINY_DCGAN, epochs=0.5, out=str(tmp_path), name="r")
    assert run.step == round(0.5 * (1797 // 32))


def test_resume_continues_in_process(tmp_path):
    full = belamy.train(**TINY_DCGAN, steps=20, ckpt_every=10, out=str(tmp_path), name="full")
    belamy.train(**TINY_DCGAN, steps=10, ckpt_every=10, out=str(tmp_path), name="part")
    resumed = belamy.train(resume=tmp_path / "part", steps=20, progress=False)
    assert resumed.step == 20
    assert same_tensors(tensors(full.path / "model.safetensors"), tensors(resumed.path / "model.safetensors"))
    a, _, _ = load_checkpoint(list_checkpoints(full.path / "checkpoints")[-1])
    b, _, _ = load_checkpoint(list_checkpoints(resumed.path / "checkpoints")[-1])
    assert same_tensors(a, b)  # G, D and the EMA generator


def _train_cmd(out, name, steps):
    return [sys.executable, "-m", "belamy", "train", "--model", "dcgan", "--data", "digits", "-o", "latent_dim=16",
            "-o", "g_width=16", "-o", "d_width=16", "--batch-size", "32", "--steps", str(steps), "--ckpt-every", "10",
            "--sample-every", "0", "--log-every", "10", "--out", str(out), "--name", name, "--no-progress"]


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    """Kill a training process with SIGKILL mid-run, resume it: the final weights equal an uninterrupted run's."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps = 150  # it is killed after its second checkpoint (step 20): the rest must outlast the polling
    proc = subprocess.Popen(_train_cmd(tmp_path, "killed", steps), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while len(list_checkpoints(ckpts)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model.safetensors").exists(), "the run finished before it was killed"
    killed_at = int(list_checkpoints(ckpts)[-1].name.split("-")[1])
    assert 0 < killed_at < steps

    resume = [sys.executable, "-m", "belamy", "train", "--resume", str(tmp_path / "killed"), "--no-progress"]
    subprocess.run(resume, env=env, check=True, capture_output=True)
    # The uninterrupted run in-process (the same flags as keyword arguments, one thread as in the subprocesses)
    belamy.train(**TINY_DCGAN, steps=steps, ckpt_every=10, out=str(tmp_path), name="straight")

    final_killed = load_checkpoint(list_checkpoints(ckpts)[-1])[0]
    final_straight = load_checkpoint(list_checkpoints(tmp_path / "straight" / "checkpoints")[-1])[0]
    assert same_tensors(final_killed, final_straight)
    assert same_tensors(tensors(tmp_path / "killed" / "model.safetensors"),
                        tensors(tmp_path / "straight" / "model.safetensors"))


class _NaNAfter12Steps(DCGAN):
    """A deliberately broken recipe: from its 13th D step on, D's loss is NaN (as when training diverges)."""

    name = "test-nan-after-12"

    def d_step(self, batch):
        self.calls = getattr(self, "calls", 0) + 1
        losses = super().d_step(batch)
        if self.calls > 12:
            losses["loss"] = losses["loss"] * float("nan")
        return losses


def test_non_finite_loss_stops_with_last_good_checkpoint(tmp_path):
    if "test-nan-after-12" not in RECIPES:
        RECIPES.register("test-nan-after-12")(_NaNAfter12Steps)
    config = {**TINY_DCGAN, "model": "test-nan-after-12", "log_every": 5, "ckpt_every": 5}
    with pytest.raises(TrainingDiverged, match="non-finite.*between steps 10 and 15.*step-0000010") as e:
        belamy.train(**config, steps=40, out=str(tmp_path), name="r")
    good = list_checkpoints(tmp_path / "r" / "checkpoints")
    assert [p.name for p in good] == ["step-0000005", "step-0000010"], str(e.value)
    nets, _, _ = load_checkpoint(good[-1])
    assert all(torch.isfinite(t).all() for t in nets.values() if t.is_floating_point())
    assert not (tmp_path / "r" / "model.safetensors").exists()
    assert '"event": "error"' in (tmp_path / "r" / "log.jsonl").read_text()


def _image_folder(root, n=40, bad=()):
    root.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        pixels = (torch.rand(12, 12, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(root / f"img{i:03d}.png")
    for name, content in bad:
        (root / name).write_bytes(content)
    return root


def test_bad_files_are_skipped_and_logged_during_training(tmp_path):
    folder = _image_folder(tmp_path / "imgs", bad=[("broken.png", b"not an image"), ("empty.jpg", b"")])
    for cache in (False, True):
        run = belamy.train(model="dcgan", data=str(folder), resolution=8, channels=3, cache=cache, batch_size=8,
                           steps=12, options={"g_width": 8, "d_width": 8}, sample_every=0, log_every=4,
                           out=str(tmp_path / "runs"), name=f"cache{cache}", progress=False)
        log = (run.path / "log.jsonl").read_text()
        assert "broken.png" in log and "empty.jpg" in log
        assert run.step == 12


def test_strict_data_refuses_bad_files_at_start(tmp_path):
    folder = _image_folder(tmp_path / "imgs", n=10, bad=[("broken.png", b"not an image")])
    with pytest.raises(DataError, match="broken.png"):
        belamy.train(model="dcgan", data=str(folder), resolution=8, strict_data=True, batch_size=4, steps=1,
                     out=str(tmp_path / "runs"), progress=False)
    with pytest.raises(DataError, match="does not exist|not found|missing"):
        belamy.train(model="dcgan", data=str(tmp_path / "nowhere"), steps=1, out=str(tmp_path), progress=False)


def test_random_horizontal_flips_are_seeded_and_only_flip():
    from belamy.data import open_data
    from belamy.train.stream import RealStream

    digits = open_data("digits")
    batches = []
    for _ in range(2):
        stream = RealStream(digits, 64, seed=0, device=torch.device("cpu"), hflip=True)
        batches.append(stream.next(torch.Generator().manual_seed(5))[0])
    plain = RealStream(digits, 64, seed=0, device=torch.device("cpu")).next(torch.Generator().manual_seed(5))[0]
    assert torch.equal(batches[0], batches[1])  # the flips come from the run's generator: resumable
    flipped = [not torch.equal(a, b) for a, b in zip(batches[0], plain)]
    assert 10 < sum(flipped) < 54  # about half of 64
    for a, b, f in zip(batches[0], plain, flipped):
        assert torch.equal(a, b.flip(2) if f else b)


def test_bf16_autocast_trains_with_the_penalty_in_fp32(tmp_path):
    """bf16 autocast (emulated on this CPU: slow, so a few steps) keeps WGAN-GP's penalty finite; fp16 needs CUDA."""
    run = belamy.train(**{**TINY_DCGAN, "model": "wgan-gp", "log_every": 2}, precision="bf16", steps=2,
                       out=str(tmp_path), name="bf16")
    records = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert records[0]["precision"] == "torch.bfloat16"
    assert all(math.isfinite(records[1][k]) and records[1][k] != 0 for k in ("gp", "loss_d", "loss_g"))
    with pytest.raises(ConfigError, match="fp16.*needs a CUDA device"):
        belamy.train(**TINY_DCGAN, precision="fp16", steps=1, out=str(tmp_path), name="fp16", device="cpu")


def test_gradient_penalty_is_computed_in_fp32_under_autocast():
    from belamy.losses import gradient_penalty

    seen = []

    def critic(x):
        seen.append(x.dtype)
        return torch.nn.functional.linear(x.flatten(1), torch.ones(1, 4))

    real, fake, alpha = torch.randn(3, 4), torch.randn(3, 4), torch.rand(3, 1)
    with torch.autocast("cpu", torch.bfloat16):
        penalty = gradient_penalty(critic, real, fake, alpha)
    assert seen == [torch.float32] and penalty.dtype == torch.float32
    assert penalty.item() == pytest.approx((2.0 - 1.0) ** 2)  # ||grad|| = ||ones(4)|| = 2


def test_a_batch_with_skipped_files_keeps_every_tensor_the_same_size(tmp_path):
    """WGAN-GP's interpolation needs as many latents and weights as real images: fewer when files were skipped."""
    folder = _image_folder(tmp_path / "imgs", n=14, bad=[("broken.png", b"not an image"), ("empty.jpg", b"")])
    run = belamy.train(model="wgan-gp", data=str(folder), resolution=8, channels=3, cache=False, batch_size=8,
                       steps=6, options={"g_width": 8, "d_width": 8}, sample_every=0, log_every=3,
                       out=str(tmp_path / "runs"), name="r", progress=False)
    assert run.step == 6 and "broken.png" in (run.path / "log.jsonl").read_text()


def test_figures_of_the_d_step_are_averaged_per_d_step():
    """With d_steps > 1, D's figures are summed d_steps times per step: these keys are divided by that many."""
    from belamy.train.loop import _d_keys

    keys = {"loss_d", "loss_g", "d_real", "d_loss_a", "grad_norm_d", "grad_norm_g", "fp16_skipped_d",
            "fp16_skipped_g", "gp", "r1", "ma_gp", "kl", "g_adversarial", "l1", "cycle"}
    assert _d_keys(dict.fromkeys(keys)) == {"loss_d", "d_real", "d_loss_a", "grad_norm_d", "fp16_skipped_d", "gp",
                                            "r1", "ma_gp"}


def test_more_ranks_than_gpus_is_a_clear_error(monkeypatch):
    """torchrun with more processes per node than GPUs: the rank without a GPU says so (rather than CUDA's 'invalid
    device ordinal' mid-start)."""
    from belamy.train.loop import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="local rank 1 but the machine has 1 GPU.*--nproc 1.*--device cpu"):
        select_device("auto", local_rank=1, distributed_run=True)
    assert select_device("cpu", local_rank=1, distributed_run=True) == torch.device("cpu")


def test_resuming_with_networks_that_do_not_fit_is_a_clear_error(tmp_path):
    """A run whose options now build other networks (as an older belamy's run may) stops with a message naming the
    checkpoint and the mismatch, not PyTorch's bare state-dict error; the run folder is left as it was."""
    import yaml

    from belamy.train.checkpoint import CheckpointError

    run = belamy.train(**TINY_DCGAN, steps=2, ckpt_every=2, out=str(tmp_path), name="old")
    config_file = run.path / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["options"]["d_width"] = 2 * config["options"].get("d_width", 16)  # D's shapes no longer fit
    config_file.write_text(yaml.safe_dump(config))
    before = sorted(p.name for p in (run.path / "checkpoints").iterdir())
    with pytest.raises(CheckpointError, match=r"step-0000002: its D does not fit .*options"):
        belamy.train(resume=run.path, steps=4, progress=False)
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == before
