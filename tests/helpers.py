"""Small shared pieces of the tests."""

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file

# A DCGAN small enough to train in seconds on scikit-learn's 8x8 digits.
TINY_DCGAN = {"model": "dcgan", "data": "digits", "options": {"latent_dim": 16, "g_width": 16, "d_width": 16},
              "batch_size": 32, "sample_every": 0, "log_every": 10, "progress": False}


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(*args: str) -> SimpleNamespace:
    """`belamy ARGS` in this process (no second torch import per call), with its exit status and output."""
    from belamy.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
