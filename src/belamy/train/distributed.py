"""Training on several processes or GPUs with PyTorch's own engine: torch.distributed + DistributedDataParallel,
launched by torchrun. belamy adds no communication of its own; it only decides who does what:

- `batch_size` is the global batch. Rank r trains on the slice [r*b, (r+1)*b) of every global batch (b = B / N):
  the union of the ranks' batches is exactly the batch one process would draw.
- Every random draw (latents, labels, flips, penalty weights) is made for the whole global batch from the run's
  generator, which is identical on every rank, and then sliced. So a run's result does not depend on N (up to the
  order of float sums) unless batch norm normalizes each rank's slice alone (without `sync_bn`), and the generator
  state plus the stream position (also identical) make resume exact.
- Rank 0 alone writes: the run folder, logs, sample grids, checkpoints. Every rank reads the same checkpoint.
- A rank that raises ends its process; torchrun then stops the others. Collectives time out after `dist_timeout`
  seconds, so even a rank that vanishes outside torchrun cannot hang the job forever.

BatchNorm: by default each rank normalizes with its own batch statistics and DDP broadcasts rank 0's running
statistics at every synchronized forward; `sync_bn` computes the statistics over the global batch instead
(torch.nn.SyncBatchNorm on CUDA; `GlobalBatchNorm` below elsewhere, since torch's supports GPUs only).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; `Dist()` is a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, global_batch: int) -> slice:
        """This rank's rows of a global batch."""
        per_rank = global_batch // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def from_environment() -> Dist:
    """The job torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK, or a single process."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        rank = int(os.environ.get("RANK", 0))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK): {e}") from None
    return Dist(rank, world_size, local_rank)


def init_process_group(info: Dist, device: torch.device, timeout_s: float) -> None:
    """gloo on CPU, NCCL on CUDA; rendezvous from torchrun's MASTER_ADDR / MASTER_PORT."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        kwargs["device_id"] = device  # binds NCCL to this rank's GPU up front (no guessing on first collective)
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                            timeout=timedelta(seconds=timeout_s), **kwargs)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: Dist, obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a run folder's path, say)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(info: Dist, tensor: Tensor) -> Tensor:
    """The mean over ranks of a tensor every rank holds (logged figures: one collective per log interval)."""
    if not info.enabled:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor / info.world_size


class _GatherRows(torch.autograd.Function):
    """All ranks' rows [sum of b, ...] from each rank's x [b, ...]; backward: the sum over the ranks of the
    gradient of the gathered rows (one all_reduce), of which each rank keeps its own rows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, rows: list[int]) -> Tensor:
        ctx.rows = rows
        padded = F.pad(x, (0, 0) * (x.dim() - 1) + (0, max(rows) - x.shape[0])).contiguous()
        parts = [torch.empty_like(padded) for _ in rows]  # all_gather wants equal shapes
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, rows)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.rows[:dist.get_rank()])
        return grad[start:start + ctx.rows[dist.get_rank()]], None


def gather_rows(x: Tensor) -> Tensor:
    """The rows of x [b, ...] of every rank, in rank order [sum of the b, ...]; x itself in a single process.
    Differentiable: the backward sums over the ranks the gradient of each rank's rows. So a loss of the whole global
    batch (a contrastive loss, where each row's term reads all the others), computed alike on every rank, gets its
    exact gradient once DDP averages the ranks' weight gradients. Ranks may hold different numbers of rows
    (unreadable images skipped)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    count = torch.tensor([x.shape[0]], device=x.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    return _GatherRows.apply(x, [int(n) for n in counts])


def all_ranks_agree(info: Dist, flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on every rank (e.g. "my slice of this batch has images"). The tensor lives on the
    training device: NCCL reduces CUDA tensors only."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def wrap(module: nn.Module, info: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `module`. No find_unused_parameters: the engine routes each phase through
    the wrapper only of the network whose gradients that phase computes (see `_Trainer._routed`)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    # Buffers (BN running stats) are broadcast from rank 0 at every synchronized forward: the default.
    return DistributedDataParallel(module, device_ids=device_ids)


# --- synchronized batch norm ----------------------------------------------------------------------------------


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose statistics are those of the global batch, summed over ranks with a differentiable
    all-reduce (torch.distributed.nn.functional.all_reduce, whose backward all-reduces the gradients).

    The same computation as torch.nn.SyncBatchNorm (Zhang et al. 2018, "Context Encoding", cross-GPU BN), for the
    CPU, which that one refuses. Counts per rank may differ. In eval mode, or with a single process, it is
    plain batch norm."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects [B, C, ...] input, got shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        # One collective for [sum, sum of squares, count] per channel; sums in float32 even under autocast.
        stats = torch.cat([xf.sum(dims), xf.square().sum(dims), count])
        stats = all_reduce(stats)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.square()).clamp_min(0)  # biased, as batch norm normalizes
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of `module` computes global-batch statistics (state kept: weights and running stats)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, _BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats).to(device)
            replacement.load_state_dict(child.state_dict())
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            sync_batchnorm(child, device)
    return module


# --- `belamy train --nproc N` ------------------------------------------------------------------------------------


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run `belamy <argv>` in `nproc` processes on this machine through torchrun (torch.distributed.run)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(["--standalone", "--nproc-per-node", str(nproc), "-m", "belamy", *argv])
    try:
        run(args)
    except ChildFailedError as e:
        failures = "; ".join(f"rank {rank} exited with {f.exitcode}" for rank, f in sorted(e.failures.items()))
        print(f"belamy: distributed run failed ({failures}); the failing rank's error is printed above",
              file=sys.stderr)
        return 1
    return 0
