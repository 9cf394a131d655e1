"""Mode coverage on Gaussian mixtures, counted as VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018) do."""

from __future__ import annotations

import math

import torch


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
    covered = int((counts > 0).sum())
    total = counts.sum()
    if total > 0:
        p = counts / total
        kl = float((p[p > 0] * (p[p > 0] * len(modes)).log()).sum())
    else:
        kl = math.nan
    return {"modes_covered": covered, "modes": len(modes), "high_quality": float(good.double().mean()),
            "kl_uniform": kl}
