"""Mode coverage, counted as VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018) do: on 2-D Gaussian
mixtures (ring8, grid25) by distance to the modes, and on stacked MNIST by classifying each channel's digit."""

from __future__ import annotations

import math

import torch
from torch import nn


def mode_coverage(samples: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> dict[str, float]:
    """Samples [N, D] against mixture modes [M, D] of per-axis std `std`.

    A sample is high quality when it lies within `n_std` standard deviations of its nearest mode; a mode is covered
    when it is the nearest mode of at least one high-quality sample (VEEGAN, section 5.1). `kl` is KL(p || uniform)
    of the histogram of high-quality samples over modes (0 when every mode gets the same share; log M when all
    samples sit in one mode); it is NaN when no sample is high quality."""
    samples, modes = samples.double(), modes.double()
    dist = torch.cdist(samples, modes)  # [N, M]
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= n_std * std
    counts = torch.bincount(nearest[good], minlength=len(modes)).double()
    return {"modes_covered": int((counts > 0).sum()), "modes": len(modes), "high_quality": float(good.double().mean()),
            "kl_uniform": kl_to_uniform(counts)}


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p || uniform) of a histogram [M] of counts: 0 when every bin has the same share, log M when one bin has
    all; NaN for an empty histogram."""
    total = counts.sum()
    if total <= 0:
        return math.nan
    p = counts.double() / total
    p = p[p > 0]
    return float((p * (p * len(counts)).log()).sum())


# --- Stacked MNIST (Metz et al. 2017; VEEGAN and PacGAN count its 1,000 modes the same way) ---------------------------

STACKED_MNIST_MODES = 1000


@torch.no_grad()
def stacked_mnist_labels(classifier: nn.Module, samples: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The mode of each stacked-MNIST image [N, 3, H, W] in [-1, 1] -> [N] in 0..999: 100 * d_R + 10 * d_G + d_B,
    each digit the classifier's argmax on one channel. `classifier` takes [B, 1, H, W] and returns 10 logits (e.g.
    belamy.metrics.classifier.train_classifier on `mnist` at the samples' resolution)."""
    if samples.dim() != 4 or samples.shape[1] != 3:
        raise ValueError(f"stacked-MNIST samples are [N, 3, H, W], got {tuple(samples.shape)}")
    n, _, h, w = samples.shape
    channels = samples.reshape(n * 3, 1, h, w)  # R, G, B of sample 0, then of sample 1, ...
    digits = torch.cat([classifier(channels[i:i + batch_size]).argmax(dim=1)
                        for i in range(0, n * 3, batch_size)]).view(n, 3)
    return (digits * torch.tensor([100, 10, 1], device=digits.device)).sum(dim=1)


def stacked_mnist_labels_to_metric(labels: torch.Tensor) -> dict[str, float]:
    """Modes [N] in 0..999 -> the modes reached (of 1,000) and KL(p || uniform) of their 1,000-bin histogram (0 for a
    perfectly even spread; log 1000 = 6.9 when every sample has the same three digits)."""
    counts = torch.bincount(labels.cpu(), minlength=STACKED_MNIST_MODES).double()
    return {"modes_covered": int((counts > 0).sum()), "modes": STACKED_MNIST_MODES, "kl_uniform": kl_to_uniform(counts)}


def stacked_mnist_modes(classifier: nn.Module, samples: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """Modes of stacked MNIST that samples [N, 3, H, W] in [-1, 1] reach, and the KL of their histogram to uniform.

    VEEGAN and PacGAN classify 26,000 samples (about 26 per mode: the real data scores all 1,000 modes and a KL near
    0.02 at that size; fewer samples leave some modes empty by chance alone)."""
    return stacked_mnist_labels_to_metric(stacked_mnist_labels(classifier, samples, batch_size))
