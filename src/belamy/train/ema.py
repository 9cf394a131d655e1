"""Exponential moving average of G's weights (used for sampling, as in Karras et al. 2018/2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, an averaged copy of a network. Buffers (BN running stats, SN vectors) are copied, not averaged."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)

    def beta(self, step: int) -> float:
        # Warm-up: early weights are mostly noise, so average over at most ~step/10 of the steps seen so far
        # (the (1 + t) / (10 + t) ramp of TensorFlow's ExponentialMovingAverage with num_updates).
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        ema_params = list(self.shadow.parameters())
        params = list(net.parameters())
        torch._foreach_lerp_(ema_params, params, 1.0 - self.beta(step))
        for b_ema, b in zip(self.shadow.buffers(), net.buffers()):
            b_ema.copy_(b)


@torch.no_grad()
def recalibrate_batchnorm(net: nn.Module, make_input, batches: int = 8) -> None:
    """Re-estimate BatchNorm running statistics of `net` for its current (averaged) weights.

    The running stats copied from the raw G were measured with other weights; averaged weights shift the
    activations, which shows as washed-out eval-mode samples. `make_input(i)` returns the i-th forward's args."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    net.train()
    for i in range(batches):
        net(*make_input(i))
    net.eval()
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
