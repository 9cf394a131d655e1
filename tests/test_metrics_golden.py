"""Feature-level metrics against golden values from torch-fidelity 0.4.0 and clean-fid 0.1.35
(shared/fixtures/metrics-golden.json), plus the properties that value tests miss: self-distance, symmetry, closed
forms, batching and chunking invariance."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from belamy.metrics.fid import StreamingStatistics, features_to_statistics, fid_from_features, frechet_distance
from belamy.metrics.inception_score import is_logits_to_metric
from belamy.metrics.kid import kid_features_to_metric
from belamy.metrics.prdc import (density_coverage_features_to_metric, features_to_knn_radii,
                                 precision_recall_features_to_metric)

# CI runs a fresh clone with shared/ beside it; a workspace may keep shared/ inside the clone.
_FIXTURE_CANDIDATES = [Path(__file__).parents[i] / "shared" / "fixtures" / "metrics-golden.json" for i in (2, 1)]


@pytest.fixture(scope="module")
def golden() -> dict:
    for path in _FIXTURE_CANDIDATES:
        if path.exists():
            return json.loads(path.read_text())
    pytest.skip(f"metrics-golden.json not found at {' or '.join(map(str, _FIXTURE_CANDIDATES))}")


def case_arrays(golden: dict, name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """A case and its regenerated arrays by name; skips when the bytes differ from the ones the values were
    computed on (numpy only promises identical Generator streams within a build)."""
    case = golden["cases"][name]
    arrays = dict(zip(case["arrays"], eval(case["recipe"], {"np": np})))  # the fixture's documented recipe format
    for key, a in arrays.items():
        digest = hashlib.sha256(np.ascontiguousarray(a, dtype="<f8").tobytes()).hexdigest()
        if digest != case["sha256"][key]:
            pytest.skip(f"{name}: regenerated '{key}' has sha256 {digest[:12]}..., fixture expects "
                        f"{case['sha256'][key][:12]}... (different numpy build?): golden values do not apply")
    return case, arrays


FID_KID_CASES = ["a_fid_kid_d64_n2000", "b_fid_kid_d256_n3000", "c_fid_kid_rankdef_d512_n300"]


# ---- FID ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FID_KID_CASES)
def test_fid_matches_torch_fidelity(golden, name):
    case, a = case_arrays(golden, name)
    want = case["fid"]["torch_fidelity"]
    got = fid_from_features(a["fake"], a["real"])
    from_statistics = frechet_distance(*features_to_statistics(a["fake"]), *features_to_statistics(a["real"]))
    if case["N"] > case["D"]:
        assert got == pytest.approx(want, rel=1e-9, abs=0)
        assert from_statistics == pytest.approx(want, rel=1e-9, abs=0)
    else:
        # Singular covariances: torch-fidelity itself is off by ~1.5e-5 here (sqrt of eigenvalue noise); the
        # features-based form matches the fixture's best estimate to rounding.
        assert got == pytest.approx(want, rel=0, abs=1e-3)
        assert from_statistics == pytest.approx(want, rel=0, abs=1e-3)
        assert case["fid"]["numerics"]["best_estimate"] == "ref_nuclear"
        assert got == pytest.approx(case["fid"]["ref_nuclear"], rel=1e-9, abs=0)


@pytest.mark.parametrize("name", FID_KID_CASES)
def test_fid_of_a_set_with_itself_is_zero(golden, name):
    case, a = case_arrays(golden, name)
    assert abs(fid_from_features(a["fake"], a["fake"])) < 1e-8
    if case["N"] > case["D"]:  # from statistics only well-conditioned covariances give 0 to 1e-8 (case c: -1e-5)
        stats = features_to_statistics(a["fake"])
        assert abs(frechet_distance(*stats, *stats)) < 1e-8


def test_fid_is_symmetric():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((300, 16)), 1.2 * rng.standard_normal((200, 16)) + 0.1
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-12)
    sx, sy = features_to_statistics(x), features_to_statistics(y)
    assert frechet_distance(*sx, *sy) == pytest.approx(frechet_distance(*sy, *sx), rel=1e-12)
    # Sizes on either side of D mix a QR factor (300 > 16) with raw centred data (10 <= 16): same value as the
    # nuclear-norm form spelled out on centred data, and as the statistics form up to its singular-covariance noise.
    z = rng.standard_normal((10, 16))
    xc, zc = x - x.mean(0), z - z.mean(0)
    spelled_out = (np.sum((x.mean(0) - z.mean(0)) ** 2) + np.sum(xc ** 2) / 299 + np.sum(zc ** 2) / 9
                   - 2 * np.linalg.svd(xc @ zc.T, compute_uv=False).sum() / np.sqrt(299 * 9))
    assert fid_from_features(x, z) == pytest.approx(spelled_out, rel=1e-12)
    assert fid_from_features(z, x) == pytest.approx(spelled_out, rel=1e-12)
    assert fid_from_features(x, z) == pytest.approx(frechet_distance(*sx, *features_to_statistics(z)), abs=1e-5)


def _features_with_moments(n: int, mu: np.ndarray, std: np.ndarray, seed: int) -> np.ndarray:
    """n samples whose sample mean is exactly mu and sample covariance exactly diag(std^2) (up to rounding)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, len(mu)))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)  # orthonormal columns, each orthogonal to the all-ones vector
    return mu + np.sqrt(n - 1) * q * std


def test_fid_closed_form_for_diagonal_gaussians():
    # For diagonal covariances the Frechet distance is |mu1 - mu2|^2 + sum_i (s1_i - s2_i)^2 (s = std).
    d = 12
    mu1, mu2 = np.linspace(-1, 1, d), np.linspace(0.5, -0.3, d)
    s1, s2 = np.linspace(0.5, 2, d), np.linspace(1.5, 0.2, d)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2)) == pytest.approx(want, rel=1e-12)
    x, y = _features_with_moments(50, mu1, s1, 1), _features_with_moments(80, mu2, s2, 2)
    assert fid_from_features(x, y) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fid_rejects_non_finite_inputs_by_name(bad):
    x = np.random.default_rng(0).standard_normal((20, 4))
    y = x.copy()
    y[3, 1] = bad
    with pytest.raises(ValueError, match="real"):
        fid_from_features(x, y)
    with pytest.raises(ValueError, match="fake"):
        fid_from_features(y, x)
    mu, sigma = features_to_statistics(x)
    bad_sigma = sigma.copy()
    bad_sigma[0, 0] = bad
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(mu, sigma, mu, bad_sigma)
    with pytest.raises(ValueError, match="features"):
        features_to_statistics(y)


def test_streaming_statistics_do_not_depend_on_batch_size():
    rng = np.random.default_rng(7)
    x = 3.0 + rng.standard_normal((1000, 24)) @ rng.standard_normal((24, 24))  # offset mean, correlated axes
    mu, sigma = features_to_statistics(x)
    for batch_size in (1, 7, 100, len(x)):
        stream = StreamingStatistics()
        for start in range(0, len(x), batch_size):
            stream.update(x[start:start + batch_size])
        got_mu, got_sigma = stream.statistics()
        assert stream.count == len(x)
        np.testing.assert_allclose(got_mu, mu, rtol=1e-10, atol=0)
        np.testing.assert_allclose(got_sigma, sigma, rtol=1e-10, atol=1e-10 * np.abs(sigma).max())
    # Two streams merged (two workers) and torch tensors in: the same statistics.
    merged = StreamingStatistics().update(torch.from_numpy(x[:333])).merge(StreamingStatistics().update(x[333:]))
    np.testing.assert_allclose(merged.statistics()[1], sigma, rtol=1e-10, atol=1e-10 * np.abs(sigma).max())


# ---- KID ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FID_KID_CASES)
def test_kid_full_sample_matches_torch_fidelity(golden, name):
    case, a = case_arrays(golden, name)
    want, params = case["kid_full_sample"], case["kid_full_sample"]["params"]
    got = kid_features_to_metric(a["fake"], a["real"], subsets=params["kid_subsets"],
                                 subset_size=params["kid_subset_size"], seed=params["rng_seed"])
    assert got["mean"] == pytest.approx(want["torch_fidelity_mean"], rel=1e-9, abs=0)
    assert got["std"] == want["torch_fidelity_std"] == 0.0


@pytest.mark.parametrize("name", FID_KID_CASES)
def test_kid_default_subsets_match_torch_fidelity(golden, name):
    case, a = case_arrays(golden, name)
    want = case["kid_default_subsets"]
    if not want.get("applicable", True):
        # N = 300 < the default subset size of 1000: refuse, as torch-fidelity does, rather than shrink silently.
        with pytest.raises(ValueError, match="subset_size=1000"):
            kid_features_to_metric(a["fake"], a["real"])
        return
    params = want["params"]
    assert (params["kid_subsets"], params["kid_subset_size"], params["rng_seed"]) == (100, 1000, 2020)
    got = kid_features_to_metric(a["fake"], a["real"])  # the defaults are torch-fidelity's
    assert got["mean"] == pytest.approx(want["torch_fidelity_mean"], rel=1e-9, abs=0)
    assert got["std"] == pytest.approx(want["torch_fidelity_std"], rel=1e-9, abs=0)


def test_kid_of_one_distribution_is_zero_in_expectation():
    # The estimator is unbiased: two samples of one Gaussian give 0 up to sampling noise (sd ~0.0015 here; it may
    # be negative), where a scaled, shifted Gaussian gives ~0.04. (A set against itself does not give 0: its
    # "cross" term keeps the diagonal k(x, x) that the within-set terms drop.)
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((1000, 32)), rng.standard_normal((1000, 32))
    same = kid_features_to_metric(x, y, subsets=1, subset_size=1000)["mean"]
    different = kid_features_to_metric(1.2 * x + 0.1, y, subsets=1, subset_size=1000)["mean"]
    assert abs(same) < 0.005 < 0.02 < different
    # Full-sample KID does not depend on which set is called fake.
    assert kid_features_to_metric(y, x, 1, 1000)["mean"] == pytest.approx(same, rel=1e-9)


# ---- Inception Score ------------------------------------------------------------------------------------------

def test_inception_score_matches_torch_fidelity(golden):
    case, a = case_arrays(golden, "d_is_logits_n2000_c10")
    assert len(case["is"]) == 3
    for want in case["is"]:
        seed = want["rng_seed"] if want["rng_seed"] is not None else 0  # unused without shuffling
        got = is_logits_to_metric(a["logits"], splits=want["splits"], shuffle=want["shuffle"], seed=seed)
        assert got["mean"] == pytest.approx(want["torch_fidelity_mean"], rel=1e-9, abs=0), want
        assert got["std"] == pytest.approx(want["torch_fidelity_std"], rel=1e-9, abs=0), want
    default = is_logits_to_metric(a["logits"])  # torch-fidelity's defaults: 10 splits, shuffled, seed 2020
    assert default["mean"] == pytest.approx(case["is"][2]["torch_fidelity_mean"], rel=1e-9, abs=0)


def test_inception_score_bounds():
    # Identical predictions give IS = 1; confident predictions spread evenly over C classes give IS = C, and
    # logits of 1e4 (probabilities that underflow to exactly 0) must not turn into NaN.
    c = 10
    assert is_logits_to_metric(np.zeros((100, c)), splits=1)["mean"] == pytest.approx(1.0, rel=1e-12)
    confident = 1e4 * np.eye(c)[np.arange(200) % c]
    assert is_logits_to_metric(confident, splits=2, shuffle=False)["mean"] == pytest.approx(c, rel=1e-12)


# ---- precision / recall, density / coverage -------------------------------------------------------------------

def test_precision_recall_counts_match_torch_fidelity(golden):
    case, a = case_arrays(golden, "e_prdc_d32_n1000")
    assert {want["k"] for want in case["precision_recall"]} == {3, 5}
    for want in case["precision_recall"]:
        got = precision_recall_features_to_metric(a["fake"], a["real"], k=want["k"])
        assert (got["precision_count"], got["recall_count"]) == (want["precision_count"], want["recall_count"])
        assert got["precision"] == want["precision_exact"] and got["recall"] == want["recall_exact"]
        # torch-fidelity rounds its fractions to float32
        assert got["precision"] == pytest.approx(want["torch_fidelity_precision"], abs=1e-7)
        assert got["f_score"] == pytest.approx(want["torch_fidelity_f_score"], rel=1e-6)


def test_density_coverage_counts_match_reference(golden):
    case, a = case_arrays(golden, "e_prdc_d32_n1000")
    want = case["density_coverage"]
    got = density_coverage_features_to_metric(a["fake"], a["real"], k=want["k"])
    assert (got["density_count"], got["coverage_count"]) == (want["density_count"], want["coverage_count"])
    assert got["density"] == pytest.approx(want["density"], rel=1e-15)
    assert got["coverage"] == pytest.approx(want["coverage"], rel=1e-15)


def test_prdc_of_identical_sets():
    x = np.random.default_rng(3).standard_normal((300, 8))
    pr = precision_recall_features_to_metric(x, x.copy(), k=3)
    dc = density_coverage_features_to_metric(x, x.copy(), k=5)
    assert pr["precision"] == pr["recall"] == dc["coverage"] == 1.0
    # Each real ball holds its centre and its k neighbours: density (k + 1) / k for a set against itself (no ties).
    assert dc["density"] == pytest.approx(6 / 5, rel=1e-15)


def _prdc_by_direct_distances(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[int, int, int, int]:
    """The definitions, spelled out on full direct-difference distance matrices (small inputs only)."""
    def sq(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)

    r_real = np.partition(sq(real, real), k, axis=1)[:, k]
    r_fake = np.partition(sq(fake, fake), k, axis=1)[:, k]
    fake_in_real = sq(fake, real) <= r_real[None, :]  # [fake, real]
    real_in_fake = sq(real, fake) <= r_fake[None, :]  # [real, fake]
    return (int(fake_in_real.any(1).sum()), int(real_in_fake.any(1).sum()), int(fake_in_real.sum()),
            int(fake_in_real.any(0).sum()))


@pytest.mark.parametrize("data", ["lattice_far_from_origin", "gaussian_with_duplicates"])
def test_prdc_counts_are_exact_whatever_the_chunking(data):
    rng = np.random.default_rng(9)
    if data == "lattice_far_from_origin":
        # Small-integer points shifted by 2^30: exact ties everywhere, and Gram-form distances (|x|^2 ~ 2^62)
        # useless, so every comparison must fall back to the direct form.
        real = 2.0 ** 30 + rng.integers(0, 3, (150, 4)).astype(float)
        fake = 2.0 ** 30 + rng.integers(0, 4, (120, 4)).astype(float)
    else:
        real = 50 + rng.standard_normal((150, 6))
        fake = 50 + 1.2 * rng.standard_normal((120, 6))
        real[100:110] = real[:10]
        fake[:5] = real[20:25]
    k = 3
    want = _prdc_by_direct_distances(fake, real, k)
    np.testing.assert_array_equal(features_to_knn_radii(real, k, chunk_size=7),
                                  np.sort(cdist(real, real), axis=1)[:, k])
    for chunk_size in (1, 7, 1000):
        pr = precision_recall_features_to_metric(fake, real, k=k, chunk_size=chunk_size)
        dc = density_coverage_features_to_metric(fake, real, k=k, chunk_size=chunk_size)
        got = (pr["precision_count"], pr["recall_count"], dc["density_count"], dc["coverage_count"])
        assert got == want, chunk_size


def test_metrics_accept_float32_torch_tensors():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    y = 1.5 * torch.randn(200, 8, generator=torch.Generator().manual_seed(1))
    xd, yd = x.double().numpy(), y.double().numpy()
    assert fid_from_features(x, y) == fid_from_features(xd, yd)
    assert kid_features_to_metric(x, y, 2, 100) == kid_features_to_metric(xd, yd, 2, 100)
    assert precision_recall_features_to_metric(x, y) == precision_recall_features_to_metric(xd, yd)
    assert is_logits_to_metric(x, splits=2) == is_logits_to_metric(xd, splits=2)
