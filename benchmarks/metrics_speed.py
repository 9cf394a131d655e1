"""Seconds to compute FID + KID + precision/recall of 10,000 vs 10,000 feature vectors (2048-d, as Inception's
pool3): belamy's metrics API vs torch-fidelity and vs the common recipe, on the same features, with the values
checked to agree.

    python benchmarks/metrics_speed.py [--n 10000] [--dim 2048] [--threads N]

torch-fidelity is not a dependency of belamy (it needs torchvision). To time it, install it beside the project,
without its dependencies, and put it on the path of this run only:

    pip install --no-deps --target /tmp/tfid torch-fidelity==0.4.0
    PYTHONPATH=/tmp/tfid python benchmarks/metrics_speed.py

When torchvision is missing or does not import, empty stand-in modules take its place for this process only (a
note says so): torch-fidelity imports torchvision at the top of its package, but the feature-level functions timed
here (metric_fid.fid_features_to_statistics + fid_statistics_to_metric, metric_kid.kid_features_to_metric,
metric_prc.prc_features_to_metric) use numpy and torch only. They get the same float32 arrays as torch tensors, as
its Inception extractor hands them over, with its defaults: KID 100 subsets of 1000 drawn from
np.random.RandomState(2020), fake rows first (belamy draws the same subsets), cubic polynomial kernel; P/R k = 3 by
torch.cdist.

The common recipe, as most GAN code bases carry it:
  FID  pytorch-fid's calculate_frechet_distance: np.cov, then scipy.linalg.sqrtm of sigma1 @ sigma2 (a complex
       Schur decomposition), real part, trace;
  KID  the numpy subset loop of torch-fidelity / clean-fid: 100 subsets of 1000, cubic polynomial kernel, unbiased
       MMD^2 (drawn in torch-fidelity's order, so the two KIDs are the same number);
  P/R  the prdc package's (Naeem et al. 2020 reference code): full sklearn pairwise-distance matrices, k-th
       neighbour by argpartition, k = 3.
belamy: metrics.evaluate(real, fake, ("fid", "kid", "pr")) on the same arrays - FID by the singular values of the
centred features' product (no matrix square root; fid.py), KID as above, k-NN balls from chunked Gram matrices
with exact re-checks near the radius (prdc.py).
The last line reads `ratio: X`: torch-fidelity's seconds over belamy's when torch-fidelity ran, else the recipe's
over belamy's (above 1: belamy is faster); both ratios are printed, labeled, above it.

Features are synthetic but shaped like Inception's (non-negative, correlated through a shared low-rank part);
timings do not depend on their values, only on N and D.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
import types

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


# --- torch-fidelity, when installed ------------------------------------------------------------------------------

_TORCHVISION_STUBS = ("torchvision", "torchvision.datasets", "torchvision.transforms",
                      "torchvision.transforms.functional", "torchvision.models")


def _stand_in_for_torchvision() -> None:
    """Empty modules under torchvision's names, with the three data set classes torch_fidelity.datasets subclasses
    at import: enough for `import torch_fidelity`, never used by its feature-level functions."""
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # what a broken import left behind
    modules = {name: types.ModuleType(name) for name in _TORCHVISION_STUBS}
    for name in ("CIFAR10", "STL10", "CIFAR100"):
        setattr(modules["torchvision.datasets"], name, type(name, (), {}))
    for name, module in modules.items():
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)


def import_torch_fidelity() -> tuple[types.SimpleNamespace | None, str]:
    """torch-fidelity's metric modules (fid, kid, prc) and a note on how they were imported; None when it is not
    installed."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return None, ("torch-fidelity not installed: skipped. To time it: pip install --no-deps --target "
                      "/tmp/tfid torch-fidelity==0.4.0, then PYTHONPATH=/tmp/tfid python benchmarks/metrics_speed.py")
    note = ""
    try:
        importlib.import_module("torchvision")  # only whether it imports
    except Exception as error:  # missing, or built for another torch (e.g. "operator torchvision::nms does not exist")
        _stand_in_for_torchvision()
        note = (f"note: torchvision does not import here ({type(error).__name__}: {str(error).splitlines()[0]}); "
                f"torch-fidelity imported beside empty stand-in modules ({', '.join(_TORCHVISION_STUBS)}), "
                f"which its feature-level functions do not use\n")
    tf = importlib.import_module("torch_fidelity")
    mods = types.SimpleNamespace(**{m: importlib.import_module(f"torch_fidelity.metric_{m}")
                                    for m in ("fid", "kid", "prc")})
    return mods, note + f"torch-fidelity {tf.__version__} from {tf.__path__[0]}"


def fidelity_fid(tfm: types.SimpleNamespace, fake_t, real_t) -> float:
    stats_fake = tfm.fid.fid_features_to_statistics(fake_t)
    stats_real = tfm.fid.fid_features_to_statistics(real_t)
    return tfm.fid.fid_statistics_to_metric(stats_fake, stats_real, verbose=False)[tfm.fid.KEY_METRIC_FID]


def fidelity_kid(tfm: types.SimpleNamespace, fake_t, real_t, subsets: int, subset_size: int) -> float:
    r = tfm.kid.kid_features_to_metric(fake_t, real_t, kid_subsets=subsets, kid_subset_size=subset_size,
                                       kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                       kid_kernel_poly_coef0=1, rng_seed=2020, verbose=False)
    return r[tfm.kid.KEY_METRIC_KID_MEAN]


def fidelity_precision_recall(tfm: types.SimpleNamespace, fake_t, real_t) -> tuple[float, float]:
    r = tfm.prc.prc_features_to_metric(fake_t, real_t, prc_neighborhood=3, prc_batch_size=10000,
                                       save_cpu_ram=False, verbose=False)
    return r[tfm.prc.KEY_METRIC_PRECISION], r[tfm.prc.KEY_METRIC_RECALL]


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
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)  # torch-fidelity's torch.cdist
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

    # torch-fidelity's own feature-level functions on the same arrays (as tensors sharing their memory)
    tfm, note = import_torch_fidelity()
    print(note)
    tf_times: dict[str, float] = {}
    if tfm is not None:
        import torch

        fake_t, real_t = torch.from_numpy(fake), torch.from_numpy(real)
        fid_t, tf_times["fid"] = timed(fidelity_fid, tfm, fake_t, real_t)
        kid_t, tf_times["kid"] = timed(fidelity_kid, tfm, fake_t, real_t, 100, subset)
        (p_t, r_t), tf_times["pr"] = timed(fidelity_precision_recall, tfm, fake_t, real_t)
    tf_s = sum(tf_times.values())

    header = f"{'':10s} {'belamy':>20s} {'sqrtm recipe':>20s}"
    header += f" {'torch-fidelity':>20s}" if tfm is not None else ""
    header += "   seconds: recipe" + (", torch-fidelity" if tfm is not None else "")
    print(header)
    rows = [("FID", result["fid"], fid_r, "fid"), ("KID", result["kid"], kid_r, "kid"),
            ("precision", result["precision"], p_r, "pr"), ("recall", result["recall"], r_r, "pr")]
    tf_values = {} if tfm is None else {"FID": fid_t, "KID": kid_t, "precision": p_t, "recall": r_t}
    for label, vb, vr, key in rows:
        line = f"{label:10s} {vb:20.12g} {vr:20.12g}"
        if tfm is not None:
            line += f" {tf_values[label]:20.12g}   {times[key]:.2f}, {tf_times[key]:.2f}"
        else:
            line += f"   {times[key]:.2f}"
        print(line)
    fid_b, kid_b = result["fid"], result["kid"]
    # Same numbers: FID to the recipe's accuracy (sqrtm of a non-symmetric product loses digits), KID to rounding,
    # precision/recall up to a few distance ties decided differently by sklearn's rounding.
    assert abs(fid_b - fid_r) <= 1e-6 * max(1.0, abs(fid_r)), (fid_b, fid_r)
    assert abs(kid_b - kid_r) <= 1e-9 * max(1.0, abs(kid_r)), (kid_b, kid_r)
    assert abs(result["precision"] - p_r) <= 3 / args.n and abs(result["recall"] - r_r) <= 3 / args.n, (result, p_r)
    print("recipe: values agree (FID to 1e-6 relative, KID to 1e-9, precision/recall to 3 samples)")
    if tfm is not None:
        # torch-fidelity works in float32 where belamy works in float64: FID from eigenvalues of sigma1 @ sigma2 (its
        # means in float32), KID from float32 kernels of the same subsets (same seed, same draw order), so the two
        # KIDs differ by rounding only, far below the spread across subsets; P/R from float32 torch.cdist.
        assert abs(fid_b - fid_t) <= 1e-6 * max(1.0, abs(fid_t)), (fid_b, fid_t)
        assert abs(kid_b - kid_t) <= 1e-3 * result["kid_std"], (kid_b, kid_t, result["kid_std"])
        assert abs(result["precision"] - p_t) <= 3 / args.n and abs(result["recall"] - r_t) <= 3 / args.n, \
            (result, p_t, r_t)
        print(f"torch-fidelity: values agree (FID to 1e-6 relative; KID on the same subsets to 1e-3 of its spread "
              f"across subsets, {result['kid_std']:.3g}; precision/recall to 3 samples)")

    line = f"seconds for FID + KID + precision/recall: belamy {belamy_s:.2f}, sqrtm recipe {recipe_s:.2f}"
    print(line + (f", torch-fidelity {tf_s:.2f}" if tfm is not None else ""))
    print(f"ratio vs the sqrtm recipe (recipe s / belamy s): {recipe_s / belamy_s:.2f}")
    if tfm is not None:
        print(f"ratio vs torch-fidelity (torch-fidelity s / belamy s): {tf_s / belamy_s:.2f}")
    print(f"ratio: {(tf_s if tfm is not None else recipe_s) / belamy_s:.2f}")


if __name__ == "__main__":
    main()
