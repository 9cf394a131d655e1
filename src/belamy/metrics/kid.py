"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", sec. 4): the unbiased estimate of
the squared MMD between two feature sets under the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged
over random subsets, in float64.

Argument order: fake first, real second (torch-fidelity's convention). The estimate is symmetric, but with random
subsets the order decides which set each draw of the generator indexes; `kid_features_to_metric` draws exactly as
torch-fidelity 0.4.0 does, so with the same seed it reproduces its subsets and its value."""

from __future__ import annotations

import numpy as np

from belamy.metrics.fid import as_feature_pair
from belamy.metrics.gram import PairDots


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / D + 1)^3 for all pairs: [N, D] x [M, D] -> [N, M] (KID's kernel, paper eq. 7)."""
    return kernel_from_dots(x @ y.T, x.shape[1])


def kernel_from_dots(dots: np.ndarray, dim: int) -> np.ndarray:
    """(dots / dim + 1)^3 elementwise: the polynomial kernel from dot products x.y (a new array)."""
    k = dots / dim
    k += 1
    return k * k * k  # in place of ** 3: same value to rounding, and cheaper than the generic power


def kid_mmd2_unbiased(fake: np.ndarray, real: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets [m, D] (Gretton et al. 2012, "A Kernel Two-Sample Test", eq. 3).

    Within-set kernel sums drop their diagonals (a point is not compared with itself), which is what makes the
    estimate unbiased: its expectation is 0 when both sets are drawn from the same distribution, so it can be
    slightly negative. The cross term keeps every pair."""
    m = fake.shape[0]
    if real.shape[0] != m or m < 2:
        raise ValueError(f"need two sets of the same size m >= 2, got {fake.shape} and {real.shape}")
    return _mmd2_from_kernels(polynomial_kernel(fake, fake), polynomial_kernel(real, real),
                              polynomial_kernel(fake, real))


def _mmd2_from_kernels(k_ff: np.ndarray, k_rr: np.ndarray, k_fr: np.ndarray) -> float:
    m = k_ff.shape[0]
    within = 0.0
    for k in (k_ff, k_rr):
        within += k.sum() - np.trace(k)
    cross = k_fr.sum()
    return float(within / (m * (m - 1)) - 2 * cross / (m * m))


def kid_features_to_metric(fake: np.ndarray, real: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                           seed: int = 2020, dots: PairDots | None = None) -> dict[str, float]:
    """KID of features [N_fake, D] and [N_real, D]: {"mean", "std"} of the unbiased MMD^2 over `subsets` subsets.

    Subsets are drawn without replacement as torch-fidelity does: one np.random.RandomState(seed); for each subset,
    first the fake rows, then the real rows. "std" is np.std (ddof=0) across subsets: it describes the spread of
    the subset estimates, not a standard error. Defaults are torch-fidelity's (100 subsets of 1000, seed 2020).
    A subset larger than either set raises, as torch-fidelity does, rather than silently shrinking (clean-fid's
    choice), so two reported KIDs are always estimates at the same subset size.

    dots: the features' dot products when another metric shares them (gram.PairDots(fake, real)): each subset's
    kernels are then read from them instead of three matrix products (same subsets, same value to rounding)."""
    x, y = as_feature_pair(fake, real)
    if dots is not None and not dots.matches(x, y):
        raise ValueError("dots were formed from other features than the fake and real given")
    ff, rr, fr = (None, None, None) if dots is None else (dots.fake_fake(), dots.real_real(), dots.fake_real())
    shared = ff is not None and rr is not None and fr is not None
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2 (the unbiased estimate divides by m - 1), got {subset_size}")
    if subset_size > min(len(x), len(y)):
        raise ValueError(f"KID subset_size={subset_size} is larger than the fake set ({len(x)} samples) or the "
                         f"real set ({len(y)} samples); pass subset_size <= {min(len(x), len(y))} or more samples")
    rng = np.random.RandomState(seed)  # a local generator: no global seeding, and torch-fidelity's exact draws
    mmd2 = np.empty(subsets)
    for i in range(subsets):
        fake_rows = rng.choice(len(x), subset_size, replace=False)
        real_rows = rng.choice(len(y), subset_size, replace=False)
        if shared:
            d = x.shape[1]
            mmd2[i] = _mmd2_from_kernels(kernel_from_dots(ff[np.ix_(fake_rows, fake_rows)], d),
                                         kernel_from_dots(rr[np.ix_(real_rows, real_rows)], d),
                                         kernel_from_dots(fr[np.ix_(fake_rows, real_rows)], d))
        else:
            mmd2[i] = kid_mmd2_unbiased(x[fake_rows], y[real_rows])
    return {"mean": float(np.mean(mmd2)), "std": float(np.std(mmd2))}
