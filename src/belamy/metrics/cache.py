"""Where measured things are kept between runs, and how they are named and written.

Everything lives under one folder, BELAMY_HOME (default ~/.cache/belamy), read from the environment on every call
(never at import) so that tests and users can point it elsewhere:

    BELAMY_HOME/weights/       feature extractor weights that you put there (belamy never downloads)
    BELAMY_HOME/classifiers/   in-domain classifiers, safetensors + JSON, keyed by a hash of data and code
    BELAMY_HOME/stats/         reference statistics of data sets (.npz), each with its fingerprint

Files are written to a temporary name in the same folder, fsynced and renamed into place, so an interrupted run
leaves either the complete file or none, and two processes writing the same file cannot interleave.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

HOME_ENV = "BELAMY_HOME"
DEFAULT_HOME = "~/.cache/belamy"


def belamy_home() -> Path:
    """BELAMY_HOME, or ~/.cache/belamy when it is unset or empty (not created here)."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def home_dir(name: str) -> Path:
    """A subfolder of BELAMY_HOME ("weights", "classifiers", "stats"), created when missing."""
    path = belamy_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def tensors_sha256(tensors: Mapping[str, torch.Tensor], skip_suffixes: tuple[str, ...] = ()) -> str:
    """sha256 of named tensors' contents (names, dtypes, shapes and bytes, in sorted name order).

    A hash of what the weights are rather than of the file that holds them, so the same weights saved as .pth or
    as .safetensors get the same fingerprint. `skip_suffixes` leaves out entries that never change outputs
    (batch norm's num_batches_tracked, missing from some exported files)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        if name.endswith(skip_suffixes):
            continue
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # Viewed as bytes: numpy has no bfloat16, and a byte view needs no copy.
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and directories on some platforms) refuse fsync: rename is still atomic
        pass


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez (uncompressed: features do not compress) to a temporary file, fsync, rename into place.

    Only plain arrays are written (strings as numpy unicode arrays), so the file loads with allow_pickle=False."""
    for key, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise ValueError(f"{key}: object arrays would need pickle to load; refusing to write them")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)
            f.flush()
            _fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def safe_name(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a data set name or path, for humans browsing the cache (hashes decide)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip("/\\"))
    return keep[-limit:].lstrip("._") or "data"
