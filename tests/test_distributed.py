"""Several processes through torchrun (gloo over loopback on this CPU): the same weights as one process, exact
resume after SIGKILL of every rank, and a failing or stalled rank ends the whole job in bounded time."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import belamy
from belamy.train.checkpoint import list_checkpoints, load_checkpoint

from helpers import same_tensors

# torchrun with 2 ranks, gloo timeouts and a wall-clock bound: alone on the machine, not beside an xdist worker.
pytestmark = pytest.mark.serial
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# A gan without batch statistics (no norm in G; maxout D): nothing couples the samples of a batch. Packed pairs
# (PacGAN2): with one 2-D point per input, near-ties between maxout pieces flip on rounding differences and make
# 1 and 2 processes part by ~3e-3 within 50 steps (a discrete choice, not a sync error); pairs keep it at ~5e-7.
RING = ["--model", "gan", "--data", "ring8", "-o", "g_norm=none", "-o", "g_width=32", "-o", "d_width=32",
        "-o", "pack=2",
        "--steps", "300", "--ckpt-every", "50", "--keep-ckpts", "6", "--log-every", "50", "--sample-every", "0",
        "--device", "cpu"]  # gloo on CPU even where a GPU exists: these compare float results across processes
# fp32: on a CPU that computes bfloat16 natively (AVX512-BF16, AMX), --precision auto trains images in bf16
# autocast, whose rounding parts 1 and 2 processes by ~7e-3 within 12 steps (measured on sngan); these tests compare
# the reductions, not the precision.
TINY_CONV = ["--data", "digits", "-o", "latent_dim=16", "-o", "g_width=16", "-o", "d_width=16", "--batch-size", "32",
             "--steps", "12", "--ckpt-every", "0", "--log-every", "6", "--sample-every", "0", "--device", "cpu",
             "--precision", "fp32"]
# Two processes sum gradients (and batch-norm statistics) in another order than one: equal up to float rounding,
# which GAN training amplifies slowly (measured: ~4e-7 after 30 steps, ~2e-4 after 300).
TOLERANCE = 1e-5  # after <= 50 steps
TOLERANCE_300_STEPS = 1e-3


def _train(args: list[str], out: Path, name: str, nproc: int | None = 2, timeout: float = 180):
    cmd = [sys.executable, "-m", "belamy", "train", *args, "--out", str(out), "--name", name, "--no-progress",
           "--dist-timeout", "60"]
    if nproc:
        cmd += ["--nproc", str(nproc)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / name


def _final_nets(run: Path, step: int | None = None) -> dict[str, torch.Tensor]:
    path = run / "checkpoints" / f"step-{step:07d}" if step else list_checkpoints(run / "checkpoints")[-1]
    return load_checkpoint(path)[0]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def _as_kwargs(args: list[str]) -> dict:
    """The CLI flags above as belamy.train keyword arguments (the one-process runs run in-process)."""
    from belamy.cli import _train_overrides, build_parser

    return _train_overrides(build_parser().parse_args(["train", *args]))


@pytest.fixture(scope="module")
def two_process_ring(tmp_path_factory) -> Path:
    return _train(RING, tmp_path_factory.mktemp("ddp"), "straight")


def test_two_processes_equal_one_process_with_twice_the_batch(two_process_ring, tmp_path):
    start = json.loads((two_process_ring / "log.jsonl").read_text().splitlines()[0])
    assert (start["processes"], start["batch_size"], start["batch_per_process"]) == (2, 256, 128)
    one = belamy.train(**_as_kwargs(RING), out=str(tmp_path), name="one", progress=False)
    assert _max_difference(_final_nets(two_process_ring, 50), _final_nets(one.path, 50)) < TOLERANCE
    two, single = _final_nets(two_process_ring), _final_nets(one.path)
    assert _max_difference(two, single) < TOLERANCE_300_STEPS
    assert not same_tensors(two, _final_nets(belamy.train(**{**_as_kwargs(RING), "seed": 1}, out=str(tmp_path),
                                                           name="other-seed", progress=False).path))


# SyncBatchNorm is the engine's, not a recipe's: two recipes cover it, sngan (a ResNet G with batch norm, where a
# bias before the norm once parted the processes) and cgan (labels sharded with the images; DCGAN's G, as in dcgan and
# wgan-gp). One torchrun launch each costs ~15 s of CI's serial phase.
@pytest.mark.parametrize("model", ["sngan", "cgan"])
def test_sync_batchnorm_two_processes_equal_one_process(model, tmp_path):
    """Every image recipe under DDP with batch norm over the global batch: BN in G and D (dcgan), WGAN-GP's
    penalty and n_critic = 5, spectral norm's power iteration (sngan), class-conditional G and projection D (cgan)."""
    args = ["--model", model, *TINY_CONV]
    two = _train([*args, "--sync-bn"], tmp_path, "two")
    assert json.loads((two / "log.jsonl").read_text().splitlines()[0])["sync_bn"] is True
    one = belamy.train(**_as_kwargs(args), out=str(tmp_path), name="one", progress=False)
    assert _max_difference(_final_nets(two), _final_nets(one.path)) < TOLERANCE


# text2img reads D in more ways than a logit (patches, caption words, a contrastive embedding), each through D's
# forward as DDP needs, keeps its pretrained text encoder frozen (no gradient DDP would wait for), and contrasts each
# image with the captions of the whole global batch (gathered from the other rank).
TEXT2IMG = ["--model", "text2img", "--data", "shapes", "--resolution", "16", "-o", "text_encoder=scratch",
            "-o", "word_weight=1", "-o", "embed_dim=16", "-o", "hidden_dim=16", "-o", "latent_dim=16",
            "-o", "cond_dim=16", "-o", "g_width=8", "-o", "d_width=8", "--batch-size", "16", "--steps", "8",
            "--ckpt-every", "0", "--log-every", "4", "--sample-every", "0", "--device", "cpu", "--precision", "fp32"]


def test_text2img_two_processes_equal_one_process(tmp_path):
    two = _train(TEXT2IMG, tmp_path, "two")
    one = belamy.train(**_as_kwargs(TEXT2IMG), out=str(tmp_path), name="one", progress=False)
    a, b = _final_nets(two), _final_nets(one.path)
    # Adam turns a rounding difference in a gradient near zero into a step of ~lr: a handful of the 200k weights
    # part by up to ~4e-5 (measured; with each rank contrasting its own rows only, 94% of them part by up to 1e-2).
    apart = sum(int(((a[k] - b[k]).abs() > 1e-6).sum()) for k in a if a[k].is_floating_point())
    assert apart <= 1e-4 * sum(v.numel() for v in a.values()) and _max_difference(a, b) < 1e-3
    logged = [[r["contrastive"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())
               if "contrastive" in r] for run in (two, one.path)]
    assert len(logged[0]) == 2 and logged[0] == pytest.approx(logged[1], rel=1e-4)


def test_gathered_rows_and_their_gradients(tmp_path):
    """gather_rows on two ranks holding 1 and 2 rows: every row in rank order, and each rank's gradient of a loss
    that every rank computes alike is the sum over the ranks (the backward of the gather)."""
    worker = Path(__file__).with_name("gather_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(re.findall(r"rank-\d-ok", done.stdout)) == ["rank-0-ok", "rank-1-ok"]  # the two may interleave


def test_killed_two_process_run_resumes_exactly(two_process_ring, tmp_path):
    cmd = [sys.executable, "-m", "belamy", "train", *RING, "--out", str(tmp_path), "--name", "killed",
           "--no-progress", "--nproc", "2"]
    launcher = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: torchrun and both ranks
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while not list_checkpoints(checkpoints) and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.05)
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
    killed_at = int(list_checkpoints(checkpoints)[-1].name.split("-")[1])
    assert 0 < killed_at < 300 and not (tmp_path / "killed" / "model.safetensors").exists()

    resume = [sys.executable, "-m", "belamy", "train", "--resume", str(tmp_path / "killed"), "--no-progress",
              "--nproc", "2"]
    done = subprocess.run(resume, env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert same_tensors(_final_nets(tmp_path / "killed"), _final_nets(two_process_ring))


@pytest.mark.parametrize("mode", ["raise", "stall"])
def test_a_failing_rank_ends_the_job(mode, tmp_path):
    """A rank that raises, or one that stops answering, ends every process within a bounded time."""
    worker = Path(__file__).with_name("distributed_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker), mode,
           "--", *RING[2:], "--out", str(tmp_path), "--name", "r", "--no-progress", "--dist-timeout", "5"]
    t0 = time.time()
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert time.time() - t0 < 90
    if mode == "raise":
        assert "deliberate failure on rank 1" in done.stderr
    else:  # rank 0 gave up waiting for rank 1 in a collective
        assert "Timed out" in done.stderr, done.stderr[-3000:]  # gloo's collective timeout on rank 0
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_bad_process_counts_are_refused(tmp_path, monkeypatch, capsys):
    from belamy.cli import main

    assert main(["train", *RING, "--nproc", "0", "--out", str(tmp_path)]) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; refused before any process group is made
    assert main(["train", *RING, "--batch-size", "255", "--out", str(tmp_path)]) == 1
    assert "batch size 255 (the global batch) is not divisible by the 2 processes" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")
    assert main(["train", *RING, "--batch-size", "254", "--nproc", "1", "--out", str(tmp_path), "--steps", "1",
                 "--no-progress"]) == 0  # one process: no torchrun, and any batch size the recipe takes
