"""Checkpoints: safetensors + JSON, atomic, verified, pruned; optimizer state round-trips exactly."""

import json

import pytest
import torch
from safetensors.torch import load_file

from belamy.train import checkpoint as ckpt


def _adam_after_steps():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    return net, opt


def test_optimizer_round_trip_continues_identically():
    net, opt = _adam_after_steps()
    tensors, meta = ckpt.optimizer_to_safe("opt", opt)
    tensors = {k: v.clone() for k, v in tensors.items()}  # what the file holds: copies, not the live tensors
    meta = json.loads(json.dumps(meta))  # what the JSON file holds
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(net.state_dict())
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.5)
    ckpt.optimizer_from_safe("opt", opt2, tensors, meta)
    assert opt2.param_groups[0]["lr"] == 1e-3 and tuple(opt2.param_groups[0]["betas"]) == (0.5, 0.9)
    x = torch.randn(4, 3)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).square().sum().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))


@pytest.mark.parametrize("fused", [False, True])
def test_channels_last_moments_come_back_in_the_weights_layout(fused):
    """Adam's moments of a channels_last conv come back in that layout (safetensors stores them contiguous): fused
    Adam pairs elements in memory order, and a resumed run would otherwise update the wrong elements."""
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(4, 8, 3).to(memory_format=torch.channels_last)
        runs.append((conv, torch.optim.Adam(conv.parameters(), lr=1e-2, fused=fused)))
    x = torch.randn(2, 4, 6, 6).to(memory_format=torch.channels_last)
    for conv, opt in runs:
        conv(x).square().sum().backward()
        opt.step()
    tensors, meta = ckpt.optimizer_to_safe("opt", runs[1][1])
    fresh = torch.optim.Adam(runs[1][0].parameters(), lr=0.5, fused=fused)
    ckpt.optimizer_from_safe("opt", fresh, {k: v.contiguous().clone() for k, v in tensors.items()},
                             json.loads(json.dumps(meta)))
    runs[1] = (runs[1][0], fresh)
    weight = runs[1][0].weight
    assert fresh.state[weight]["exp_avg"].stride() == weight.stride()
    for conv, opt in runs:
        opt.zero_grad()
        conv(x).pow(3).sum().backward()
        opt.step()
    assert torch.equal(runs[0][0].weight, runs[1][0].weight)


def test_save_load_prune_and_verify(tmp_path):
    net, opt = _adam_after_steps()
    nets = ckpt.flatten_state_dicts({"G": net})
    optim, meta = ckpt.optimizer_to_safe("opt_G", opt)
    for step in (10, 20, 30, 40):
        ckpt.save_checkpoint(tmp_path, step, nets, optim, {"optimizers": {"opt_G": meta}}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-0000030", "step-0000040"]
    loaded_nets, _, state = ckpt.load_checkpoint(tmp_path / "step-0000040")
    assert state["step"] == 40 and torch.equal(loaded_nets["G.weight"], net.weight)
    assert ckpt.unflatten(loaded_nets, "G").keys() == net.state_dict().keys()
    # Every file is plain safetensors / JSON: no pickle anywhere.
    assert set(load_file(str(tmp_path / "step-0000040" / "nets.safetensors"))) == set(nets)
    # A corrupted file is detected by its hash, not loaded.
    (tmp_path / "step-0000040" / "nets.safetensors").write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="does not match the hash"):
        ckpt.load_checkpoint(tmp_path / "step-0000040")


def test_partial_checkpoint_is_ignored_and_cleaned(tmp_path):
    """A crash mid-write leaves a temporary folder (or a folder without state.json): never taken for a checkpoint."""
    net, opt = _adam_after_steps()
    optim, meta = ckpt.optimizer_to_safe("opt_G", opt)
    ckpt.save_checkpoint(tmp_path, 5, ckpt.flatten_state_dicts({"G": net}), optim, {}, keep=3)
    (tmp_path / ".tmp-step-0000010-123").mkdir()
    (tmp_path / "step-0000015").mkdir()  # no state.json: incomplete
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-0000005"]
    ckpt.remove_partial(tmp_path)
    assert not (tmp_path / ".tmp-step-0000010-123").exists()


def test_atomic_json_and_tensors(tmp_path):
    ckpt.write_json_atomic(tmp_path / "a.json", {"x": 1})
    ckpt.save_file_atomic({"w": torch.ones(2)}, tmp_path / "m.safetensors")
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "m.safetensors"]  # no temp files left
