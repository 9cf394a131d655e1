"""Shared building blocks: spectral norm, conditional batch norm, class conditioning, resolution arithmetic."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def spectral_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Wrap a layer's weight with spectral normalization (Miyato et al. 2018) when `enabled`.

    Uses torch's parametrization (one power iteration per training forward), whose state dict holds plain tensors
    and so saves to safetensors."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def split_resolution(resolution: int) -> tuple[int, int]:
    """Write `resolution` as base * 2**k with 4 <= base < 8, so G can start at base x base and double k times.

    8 -> (4, 1), 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    k, base = 0, resolution
    while base >= 8 and base % 2 == 0:
        base, k = base // 2, k + 1
    if not 4 <= base < 8 or k == 0:
        raise ValueError(f"resolution {resolution} is not base * 2**k with base in 4..7 and k >= 1 "
                         f"(e.g. 8, 16, 28, 32, 56, 64, 128)")
    return base, k


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017; Miyato & Koyama 2018).

    Gains start at 1 and biases at 0 so that the conditional network starts as the unconditional one."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        out = self.bn(x)
        return out * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class Norm2d(nn.Module):
    """BatchNorm2d, or ConditionalBatchNorm2d when the network is class-conditional; takes (x, y) either way."""

    def __init__(self, num_features: int, num_classes: int = 0) -> None:
        super().__init__()
        self.norm = ConditionalBatchNorm2d(num_features, num_classes) if num_classes else nn.BatchNorm2d(num_features)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        return self.norm(x, y) if isinstance(self.norm, ConditionalBatchNorm2d) else self.norm(x)


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Labels [B] -> one-hot [B, num_classes]: Mirza & Osindero 2014 condition G and D by concatenation."""
    return F.one_hot(y, num_classes).to(dtype)


def label_planes(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """Labels [B] -> one-hot planes [B, num_classes, H, W] to concatenate to an image [B, C, H, W]."""
    b, _, h, w = like.shape
    return one_hot(y, num_classes, like.dtype)[:, :, None, None].expand(b, num_classes, h, w)


class Projection(nn.Module):
    """The projection discriminator's class term <embed(y), h> (Miyato & Koyama 2018, eq. 3)."""

    def __init__(self, num_classes: int, features: int, sn: bool) -> None:
        super().__init__()
        embed = nn.Embedding(num_classes, features)
        # Small initial class vectors (nn.Embedding's default is N(0, 1)): with hundreds of features a unit-normal
        # projection would swamp the unconditional logit at the start of training.
        nn.init.normal_(embed.weight, 0.0, 0.02)
        self.embed = spectral_norm(embed, sn)

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        return (self.embed(y) * h).sum(dim=1, keepdim=True)


def check_condition(y: Tensor | None, num_classes: int, batch: int) -> None:
    """A conditional net needs labels [B]; an unconditional one must not get any (it would silently ignore them)."""
    if num_classes and (y is None or y.shape != (batch,)):
        raise ValueError(f"this network is conditioned on {num_classes} classes and needs labels of shape "
                         f"[{batch}], got {None if y is None else tuple(y.shape)}")
    if not num_classes and y is not None:
        raise ValueError("this network is unconditional but was given labels")


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, "Progressive Growing of GANs", section 3): one feature
    appended to every sample, the std of each feature over a group of samples, averaged over features (and pixels).

    A discriminator that sees how varied a group of its inputs is can reject a generator that makes them all alike,
    which fights mode collapse. Input [N, C] or [N, C, H, W] -> [N, C + 1] or [N, C + 1, H, W]. A group is
    `group_size` consecutive samples (the paper's code takes every (N/G)-th sample instead: the same in distribution,
    but consecutive groups keep a batch split across DDP processes exactly equivalent to the whole batch in one);
    when N is not a multiple, the group is the largest divisor of N below `group_size` (a batch of 6 with group 4
    gives groups of 3)."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        n, c, *rest = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.float().reshape(n // g, g, c, *rest)  # [N/G, G, C, ...]
        # Per feature and pixel, over the group -> [N/G, C, ...]. Written out: torch.var over this strided view is
        # ~10x slower on CPU than the whole D step it sits in.
        std = ((y - y.mean(dim=1, keepdim=True)).square().mean(dim=1) + 1e-8).sqrt()
        std = std.mean(dim=tuple(range(1, std.dim())))  # [N/G]: one figure per group
        std = std.reshape(n // g, 1, 1, *[1] * len(rest)).expand(n // g, g, 1, *rest).reshape(n, 1, *rest)
        # In x's dtype and memory layout: torch.cat keeps channels_last only when all its inputs have it, and an NCHW
        # result would send the next convolution down the slow path (measured: DCGAN D's step 2.2x slower).
        std = torch.empty_like(x[:, :1]).copy_(std)
        return torch.cat([x, std], dim=1)
