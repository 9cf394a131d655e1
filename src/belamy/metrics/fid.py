"""Frechet distance between Gaussians fitted to features (Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium", eq. 6), in float64."""

from __future__ import annotations

import numpy as np


def features_to_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] in float64; two-pass (centred) so no digits are lost."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got shape {x.shape}")
    mu = x.mean(axis=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2).

    The symmetric form lets every square root be taken by `eigh` of a symmetric PSD matrix (real, faster than
    scipy.linalg.sqrtm); eigenvalues below 0 are rounding noise and clipped, so there is never a complex or NaN."""
    w1, v1 = np.linalg.eigh(sigma1)
    s1_half = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    inner = s1_half @ sigma2 @ s1_half
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
