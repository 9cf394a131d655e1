"""Frechet distance between Gaussians fitted to features (Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium", eq. 6), in float64.

Stages: features -> statistics (`features_to_statistics`, or `StreamingStatistics` batch by batch) -> metric
(`frechet_distance`). `fid_from_features` goes straight from two feature sets and is the accurate choice when a
set has no more samples than dimensions (singular covariances). Argument order: fake first, real second
(torch-fidelity's convention); the distance is symmetric up to rounding."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dtrmm


def as_float64_features(x: Any, name: str, ndim: int = 2) -> np.ndarray:
    """`x` (numpy array, torch tensor on any device, or nested lists) as a float64 array of `ndim` dimensions.

    Raises ValueError naming `name` for a wrong number of dimensions or any NaN/inf, so that a bad feature
    extractor fails here rather than as a silent NaN metric. Shared by the metric modules of this package."""
    if hasattr(x, "detach"):  # a torch tensor: may need grad, live on a GPU, or be bfloat16 (numpy has no such type)
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    bad = a.size - np.count_nonzero(np.isfinite(a))
    if bad:
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf) out of {a.size}")
    return a


def features_to_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] in float64; two-pass (centred) so no digits are lost."""
    x = as_float64_features(features, "features")
    if x.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got shape {x.shape}")
    mu = x.mean(axis=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2).

    The symmetric form lets every square root be taken by `eigh` of a symmetric PSD matrix (real, faster than
    scipy.linalg.sqrtm); eigenvalues below 0 are rounding noise and clipped, so there is never a complex or NaN.
    From statistics alone, singular covariances (N <= D) cost digits: the square roots of their ~1e-13 noise
    eigenvalues add up (about 1e-5 absolute at N=300, D=512); `fid_from_features` avoids that."""
    mu1 = as_float64_features(mu1, "mu1", ndim=1)
    mu2 = as_float64_features(mu2, "mu2", ndim=1)
    sigma1 = as_float64_features(sigma1, "sigma1")
    sigma2 = as_float64_features(sigma2, "sigma2")
    d = mu1.shape[0]
    for name, shape in (("mu2", mu2.shape), ("sigma1", sigma1.shape), ("sigma2", sigma2.shape)):
        if shape != (d,) * len(shape):
            raise ValueError(f"{name} has shape {shape}; with mu1 of shape {mu1.shape} it must be {(d,) * len(shape)}")
    w1, v1 = np.linalg.eigh(sigma1)
    s1_half = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    inner = s1_half @ sigma2 @ s1_half
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def _factor_terms(xc1: np.ndarray, xc2: np.ndarray) -> tuple[float, float, float]:
    """(|Xc1|_F^2, |Xc2|_F^2, nuclear norm of F1 F2^T) of centred data [N1, D], [N2, D], accurate for any N.

    F is the centred data itself, or when N > D its thin-QR R factor (R^T R = Xc^T Xc, backward stable), which keeps
    the SVD at D x D whatever N is; no covariance is formed or square-rooted, so singular covariances cost nothing."""
    f1, f2 = (np.linalg.qr(xc, mode="r") if xc.shape[0] > xc.shape[1] else xc for xc in (xc1, xc2))
    return float(np.sum(f1 * f1)), float(np.sum(f2 * f2)), float(np.linalg.svd(f1 @ f2.T, compute_uv=False).sum())


def _constant_columns(x: np.ndarray) -> np.ndarray:
    """[D] bool: the features that take one value over every sample (zero variance, e.g. dead ReLU units)."""
    return (x == x[0]).all(axis=0)


def _gram_terms(x1: np.ndarray, x2: np.ndarray, xc1: np.ndarray,
                xc2: np.ndarray) -> tuple[float, float, float] | None:
    """`_factor_terms` from the D x D Gram matrices G = Xc^T Xc, or None when a covariance is numerically singular.

    The nuclear norm of F1 F2^T is Tr sqrt(G1 G2) = sum sqrt(eig(L1^T G2 L1)), with G1 = L1 L1^T by Cholesky:
    two symmetric products (syrk), a Cholesky, two triangular products and the eigenvalues of one symmetric
    matrix (no eigenvectors), about a third of the work of the QR route. Features constant in either set are left
    out first: their covariance rows and columns are exactly 0, and Tr sqrt(S1 S2) only sees S2 on the range of S1
    (and S1 on the range of S2), so the nuclear norm is unchanged. What remains must be numerically positive
    definite: when the Cholesky fails, or an eigenvalue of L1^T G2 L1 lies within D eps of the largest (duplicated
    or linearly dependent features, data on a subspace), rounding noise would enter through its square root, and
    None sends the caller to the QR route."""
    g1, g2 = xc1.T @ xc1, xc2.T @ xc2  # numpy computes A^T A with syrk: half a general product's work
    sq1, sq2 = float(np.trace(g1)), float(np.trace(g2))
    live = ~(_constant_columns(x1) | _constant_columns(x2))
    if not live.any():
        return sq1, sq2, 0.0
    if not live.all():
        g1, g2 = g1[np.ix_(live, live)], g2[np.ix_(live, live)]
    try:
        l1 = np.linalg.cholesky(g1)  # lower, G1 = L1 L1^T
    except np.linalg.LinAlgError:
        return None
    a = dtrmm(1.0, l1, dtrmm(1.0, l1, g2, side=1, lower=1), side=0, lower=1, trans_a=1)  # L1^T (G2 L1)
    lam = scipy.linalg.eigh(a, eigvals_only=True, check_finite=False)  # ascending; reads one triangle
    if lam[0] <= len(lam) * np.finfo(np.float64).eps * lam[-1]:
        return None
    return sq1, sq2, float(np.sqrt(lam).sum())


def fid_from_features(fake: np.ndarray, real: np.ndarray) -> float:
    """FID of two feature sets [N1, D] and [N2, D], accurate whether or not N > D.

    Tr sqrt(S1 S2) is the sum of the singular values of F1 F2^T / sqrt((N1 - 1)(N2 - 1)), with F the centred data
    or any factor with F^T F = Xc^T Xc: S1 S2 and (F1 F2^T)(F1 F2^T)^T share their nonzero eigenvalues. Two routes:
    - both N > D: from the Gram matrices and a Cholesky factor (`_gram_terms`), which declines when a covariance is
      numerically singular beyond constant features;
    - otherwise, or when it declines: from thin-QR factors and an SVD (`_factor_terms`), which takes no square root
      of a covariance, so when N <= D (rank-deficient covariances) the hundreds of eigenvalues that are exactly 0
      in theory contribute ~1e-13 instead of the sqrt of their noise (~1e-5).
    Both agree with the eigenvalue forms of torch-fidelity and clean-fid to ~14 digits where N > D (golden tests),
    and with each other to ~1e-13 relative on well-conditioned features. 10,000 vs 10,000 features of dimension
    2048 on one core: 4.3 s by the Gram route (syrk 1.1 s x 2, Cholesky 0.2 s, triangular products 0.7 s,
    eigenvalues 0.7 s), 9.6 s by the QR route (QR 4.0 s x 2, product 0.5 s, SVD 3.6 s). A square root of a
    covariance by eigh (L = V sqrt(max(w, 0)), then the eigenvalues of L^T G2 L: about 6.5 s from its parts) was
    slower, and lost digits where Cholesky did not (1e-9 to 1e-6 relative on ill-conditioned or dead features)."""
    x1 = as_float64_features(fake, "fake")
    x2 = as_float64_features(real, "real")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"fake and real features differ in dimension: {x1.shape} vs {x2.shape}")
    for name, x in (("fake", x1), ("real", x2)):
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples for a covariance, got shape {x.shape}")
    mu1, mu2 = x1.mean(axis=0), x2.mean(axis=0)
    xc1, xc2 = x1 - mu1, x2 - mu2
    n1, n2 = x1.shape[0] - 1, x2.shape[0] - 1
    terms = _gram_terms(x1, x2, xc1, xc2) if min(n1, n2) >= x1.shape[1] else None
    sq1, sq2, nuclear = terms if terms is not None else _factor_terms(xc1, xc2)
    # Tr S = |Xc|_F^2 / (N - 1): a sum of squares, exact to rounding, equal to the covariance's trace.
    diff = mu1 - mu2
    return float(diff @ diff + sq1 / n1 + sq2 / n2 - 2 * nuclear / np.sqrt(n1 * n2))


class StreamingStatistics:
    """Mean and unbiased covariance of features that arrive in batches, without keeping them (float64).

    Each batch is reduced to (count, mean, centred sum of outer products) and merged by Chan, Golub & LeVeque's
    parallel update ("Updating formulae and a pairwise algorithm for computing sample variances", 1979):
    M2 = M2_a + M2_b + delta delta^T n_a n_b / n. Centring within each batch avoids the cancellation of the
    one-pass sum-of-squares formula, so the result matches `features_to_statistics` on the concatenation to
    ~1e-13 relative whatever the batch sizes."""

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None  # [D]
        self._m2: np.ndarray | None = None  # [D, D], sum over samples of (x - mean)(x - mean)^T

    def update(self, batch: np.ndarray) -> StreamingStatistics:
        """Add a batch [B, D] (B >= 1); returns self so calls can be chained."""
        x = as_float64_features(batch, "batch")
        if x.shape[0] == 0:
            return self
        mean_b = x.mean(axis=0)
        xc = x - mean_b
        self._merge(x.shape[0], mean_b, xc.T @ xc)
        return self

    def merge(self, other: StreamingStatistics) -> StreamingStatistics:
        """Fold in the statistics of another stream (e.g. another worker's); returns self."""
        if other.count:
            self._merge(other.count, other._mean, other._m2)
        return self

    def _merge(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self._mean is None:
            self.count, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        if mean_b.shape != self._mean.shape:
            raise ValueError(f"batch has {mean_b.shape[0]} features, earlier batches had {self._mean.shape[0]}")
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self._mean = self._mean + delta * (n_b / n)
        self.count = n

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [D], sigma [D, D]) as `features_to_statistics` gives them; needs at least 2 samples."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        return self._mean.copy(), self._m2 / (self.count - 1)


def as_feature_pair(fake, real) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of a two-sample metric as float64 [N, D] arrays of the same feature dimension."""
    x = as_float64_features(fake, "fake")
    y = as_float64_features(real, "real")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"fake and real features differ in dimension: {x.shape} vs {y.shape}")
    return x, y
