"""Checkpoints as safetensors + JSON (never pickle), written atomically.

A checkpoint is a folder `checkpoints/step-0001000/` holding
  nets.safetensors   every network's state dict, keys prefixed by the network's name ("G.", "D.", "G_ema.")
  optim.safetensors  optimizer tensors (Adam's moments and step counts)
  state.json         step, config, optimizer hyper-parameters, data position, RNG states, and the file hashes
It is written to a temporary folder, every file fsynced, then renamed into place: a crash at any moment leaves
either the complete checkpoint or none (a leftover temporary folder is ignored and removed on resume).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_FILE = "state.json"
NETS_FILE = "nets.safetensors"
OPTIM_FILE = "optim.safetensors"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    pass


def flatten_state_dicts(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """{"G": module, ...} -> {"G.layer.weight": tensor, ...}, contiguous and detached (as safetensors needs)."""
    return {f"{name}.{key}": t.detach().contiguous().cpu()
            for name, module in modules.items() for key, t in module.state_dict().items()}


def unflatten(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_to_safe(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into tensors (for safetensors) and JSON-able hyper-parameters."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{name}.{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_safe(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    prefix = name + "."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    # Fused Adam pairs a weight's elements with those of its moments in memory order, so the moments must have the
    # weight's layout (channels_last), which safetensors does not keep: otherwise a resumed run updates wrongly.
    for group in optimizer.param_groups:
        for param in group["params"]:
            entry = optimizer.state.get(param, {})
            for key, value in entry.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    entry[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_file_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:07d}"


def save_checkpoint(root: Path, step: int, nets: dict[str, torch.Tensor], optim: dict[str, torch.Tensor],
                    state: dict[str, Any], keep: int) -> Path:
    """Write one complete checkpoint folder atomically, then prune to the newest `keep`."""
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(root, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(nets, str(tmp / NETS_FILE))
    save_file(optim, str(tmp / OPTIM_FILE))
    state = {**state, "format_version": FORMAT_VERSION, "step": step,
             "sha256": {NETS_FILE: _sha256(tmp / NETS_FILE), OPTIM_FILE: _sha256(tmp / OPTIM_FILE)}}
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
    for f in (NETS_FILE, OPTIM_FILE, STATE_FILE):
        _fsync_file(tmp / f)
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a folder without state.json is not one)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def remove_partial(root: Path) -> None:
    """Remove temporary folders a crash left behind."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint folder: (nets tensors, optimizer tensors, state)."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path / STATE_FILE} cannot be read: {e}") from None
    for name, digest in state.get("sha256", {}).items():
        if not (path / name).is_file() or _sha256(path / name) != digest:
            raise CheckpointError(f"{path / name} is missing or does not match the hash in {STATE_FILE}")
    return load_file(str(path / NETS_FILE)), load_file(str(path / OPTIM_FILE)), state
