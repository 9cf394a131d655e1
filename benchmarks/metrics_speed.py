"""Seconds to compute FID + KID + precision/recall of 10,000 vs 10,000 feature vectors (2048-d, as Inception's
pool3): belamy's metrics API vs the common recipe, on the same features, with the values checked to agree.

    python benchmarks/metrics_speed.py [--n 10000] [--dim 2048] [--threads N]

The common recipe, as most GAN code bases carry it:
  FID  pytorch-fid's calculate_frechet_distance: np.cov, then scipy.linalg.sqrtm of sigma1 @ sigma2 (a complex
       Schur decomposition), real part, trace;
  KID  the numpy subset loop of torch-fidelity / clean-fid: 100 subsets of 1000, cubic polynomial kernel, unbiased
       MMD^2 (drawn in torch-fidelity's order, so the two KIDs are the same number);
  P/R  the prdc package's (Naeem et al. 2020 reference code): full sklearn pairwise-distance matrices, k-th
       neighbour by argpartition, k = 3.
belamy: metrics.evaluate(real, fake, ("fid", "kid", "pr")) on the same arrays - FID by the singular values of the
centred features' product (no matrix square root; fid.py), KID as above, k-NN balls from chunked Gram matrices
with exact re-checks near the radius (prdc.py). torch-fidelity itself is timed only when it is importable.
The last line reads `ratio: X`: recipe seconds over belamy seconds (above 1: belamy is faster).

Features are synthetic but shaped like Inception's (non-negative, correlated through a shared low-rank part);
timings do not depend on their values, only on N and D.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
import scipy.linalg
from sklearn.metrics import pairwise_distances

from belamy import metrics


def synthetic_features(n: int, dim: int, shift: float, seed: int) -> np.ndarray:
    """Non-negative float32 features [n, dim] correlated through a low-rank part shared by every set (as
    average-pooled ReLU activations are); `shift` moves a set's mean."""
    mixing = np.random.default_rng(12345).standard_normal((32, dim)) / 8  # the same for fake and real
    rng = np.random.default_rng(seed)
    shared = np.maximum(rng.standard_normal((n, 32)) @ mixing, 0)
    return (np.abs(rng.standard_normal((n, dim)) * 0.3 + shift) + shared).astype(np.float32)


# --- the common recipe ------------------------------------------------------------------------------------------

def recipe_fid(fake: np.ndarray, real: np.ndarray) -> float:
    mu1, sigma1 = np.mean(fake, axis=0), np.cov(fake, rowvar=False)
    mu2, sigma2 = np.mean(real, axis=0), np.cov(real, rowvar=False)
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean  # older SciPy with disp=False
    if not np.isfinite(covmean).all():  # pytorch-fid's fallback for singular products
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def recipe_kid(fake: np.ndarray, real: np.ndarray, subsets: int = 100, subset_size: int = 1000,
               seed: int = 2020) -> float:
    fake, real = fake.astype(np.float64), real.astype(np.float64)
    rng = np.random.RandomState(seed)
    d = fake.shape[1]
    m = subset_size
    mmds = np.zeros(subsets)
    for i in range(subsets):
        f = fake[rng.choice(len(fake), m, replace=False)]
        r = real[rng.choice(len(real), m, replace=False)]
        k_ff, k_rr, k_fr = (f @ f.T / d + 1) ** 3, (r @ r.T / d + 1) ** 3, (f @ r.T / d + 1) ** 3
        mmds[i] = ((k_ff.sum() - np.diag(k_ff).sum()) + (k_rr.sum() - np.diag(k_rr).sum())) / (m * (m - 1)) \
            - 2 * k_fr.sum() / (m * m)
    return float(mmds.mean())


def recipe_precision_recall(fake: np.ndarray, real: np.ndarray, k: int = 3) -> tuple[float, float]:
    def kth_radii(x: np.ndarray) -> np.ndarray:
        d = pairwise_distances(x, x, metric="euclidean")
        return np.take_along_axis(d, np.argpartition(d, k + 1, axis=-1)[..., :k + 1], axis=-1).max(axis=-1)

    real_radii, fake_radii = kth_radii(real), kth_radii(fake)
    d_real_fake = pairwise_distances(real, fake, metric="euclidean")
    precision = (d_real_fake <= real_radii[:, None]).any(axis=0).mean()
    recall = (d_real_fake <= fake_radii[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="feature vectors per side (default 10000)")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048, Inception's)")
    parser.add_argument("--threads", type=int, help="BLAS threads (default: the library's)")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    real = synthetic_features(args.n, args.dim, 0.5, seed=0)
    fake = synthetic_features(args.n, args.dim, 0.52, seed=1)
    subset = min(1000, args.n)
    print(f"{args.n} vs {args.n} features of dimension {args.dim}; KID: 100 subsets of {subset}; P/R: k = 3")

    # belamy: one call of the public API on the same arrays, as a user makes it (the three metrics share their
    # dot products, so they are timed together)
    settings = metrics.MetricSettings(kid_subset_size=subset)
    result, belamy_s = timed(lambda: metrics.evaluate(real, fake, ("fid", "kid", "pr"), settings=settings))

    times: dict[str, float] = {}
    fid_r, times["fid"] = timed(recipe_fid, fake, real)
    kid_r, times["kid"] = timed(recipe_kid, fake, real, 100, subset)
    (p_r, r_r), times["pr"] = timed(recipe_precision_recall, fake, real)
    recipe_s = sum(times.values())

    print(f"{'':10s} {'belamy':>22s} {'sqrtm recipe':>22s}   recipe seconds")
    rows = [("FID", result["fid"], fid_r, "fid"), ("KID", result["kid"], kid_r, "kid"),
            ("precision", result["precision"], p_r, "pr"), ("recall", result["recall"], r_r, "pr")]
    for label, vb, vr, key in rows:
        print(f"{label:10s} {vb:22.12g} {vr:22.12g}   {times[key]:.2f}")
    fid_b, kid_b = result["fid"], result["kid"]
    # Same numbers: FID to the recipe's accuracy (sqrtm of a non-symmetric product loses digits), KID to rounding,
    # precision/recall up to a few distance ties decided differently by sklearn's rounding.
    assert abs(fid_b - fid_r) <= 1e-6 * max(1.0, abs(fid_r)), (fid_b, fid_r)
    assert abs(kid_b - kid_r) <= 1e-9 * max(1.0, abs(kid_r)), (kid_b, kid_r)
    assert abs(result["precision"] - p_r) <= 3 / args.n and abs(result["recall"] - r_r) <= 3 / args.n, (result, p_r)
    print("values agree (FID to 1e-6 relative, KID to 1e-9, precision/recall to 3 samples)")

    if importlib.util.find_spec("torch_fidelity") is None:
        print("torch-fidelity not installed: skipped")
    else:
        print("torch-fidelity installed, but its public API measures images, not given features: not timed here")
    print(f"seconds for FID + KID + precision/recall: belamy {belamy_s:.2f}, recipe {recipe_s:.2f}")
    print(f"ratio: {recipe_s / belamy_s:.2f}")


if __name__ == "__main__":
    main()
