"""Dot products shared between metrics (belamy.metrics.gram): every path gives the same decisions and values as
the chunked products, whether the matrices are formed whole, shared, or too big to form. Also FID's Gram-matrix
route against its QR route (fid.py)."""

from __future__ import annotations

import numpy as np
import pytest

from belamy.metrics import gram
from belamy.metrics.fid import _factor_terms, _gram_terms, fid_from_features
from belamy.metrics.gram import PairDots
from belamy.metrics.kid import _indicators, _subset_kernel_sums, kid_features_to_metric, polynomial_kernel
from belamy.metrics.prdc import density_coverage_features_to_metric, features_to_knn_radii, \
    precision_recall_features_to_metric


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    fake = np.abs(rng.standard_normal((300, 24)) + 0.2)
    real = np.abs(rng.standard_normal((260, 24)))
    fake[5] = real[7]  # a point shared by both sets (distance 0): inside every ball around it, on every path
    return fake, real


def test_whole_shared_and_chunked_products_agree(pair, monkeypatch):
    fake, real = pair
    dots = PairDots(fake, real)
    pr = precision_recall_features_to_metric(fake, real, k=3, chunk_size=64, dots=dots)
    dc = density_coverage_features_to_metric(fake, real, k=5, chunk_size=64, dots=dots)
    kid = kid_features_to_metric(fake, real, subsets=20, subset_size=100, dots=dots)
    radii = features_to_knn_radii(real, 3, chunk_size=64)
    monkeypatch.setattr(gram, "WHOLE_GRAM_BYTES", 0)  # nothing fits: every product chunk by chunk
    assert PairDots(fake, real).fake_real() is None
    assert precision_recall_features_to_metric(fake, real, k=3, chunk_size=64) == pr
    assert density_coverage_features_to_metric(fake, real, k=5, chunk_size=64) == dc
    assert np.array_equal(features_to_knn_radii(real, 3, chunk_size=64), radii)
    direct = kid_features_to_metric(fake, real, subsets=20, subset_size=100)
    assert direct["mean"] == pytest.approx(kid["mean"], rel=1e-12) and direct["std"] == pytest.approx(kid["std"],
                                                                                                      rel=1e-9)


def test_dots_of_other_features_are_refused(pair):
    fake, real = pair
    with pytest.raises(ValueError, match="other features"):
        precision_recall_features_to_metric(fake, real, dots=PairDots(fake, real[::-1].copy()))
    with pytest.raises(ValueError, match="other features"):
        kid_features_to_metric(fake, real, subsets=2, subset_size=50, dots=PairDots(fake[:-1].copy(), real))


def test_kid_subset_sums_from_dots_match_each_subset_summed_alone():
    # All subsets at once (indicator matrices over the whole kernel) against each subset's kernel blocks summed
    # on their own, as torch-fidelity does; sets of different sizes, rows in blocks of a few.
    rng = np.random.default_rng(1)
    fake, real = np.abs(rng.standard_normal((230, 16)) + 0.1), np.abs(rng.standard_normal((170, 16)))
    dots = PairDots(fake, real, max_bytes=1 << 20)
    ff, fr = dots.fake_fake().copy(), dots.fake_real().copy()
    fake_rows = np.stack([rng.choice(230, 60, replace=False) for _ in range(7)])
    real_rows = np.stack([rng.choice(170, 60, replace=False) for _ in range(7)])
    in_fake, in_real = _indicators(fake_rows, 230), _indicators(real_rows, 170)
    within = _subset_kernel_sums(dots.fake_fake(), 16, in_fake, None)
    cross = _subset_kernel_sums(dots.fake_real(), 16, in_fake, in_real)
    for s in range(7):
        f, r = fake[fake_rows[s]], real[real_rows[s]]
        k_ff = polynomial_kernel(f, f)
        assert within[s] == pytest.approx(k_ff.sum() - np.trace(k_ff), rel=1e-13)
        assert cross[s] == pytest.approx(polynomial_kernel(f, r).sum(), rel=1e-13)
    # the shared matrices are read, never written (precision/recall use them next)
    assert np.array_equal(dots.fake_fake(), ff) and np.array_equal(dots.fake_real(), fr)


def test_kid_from_shared_dots_matches_the_per_subset_path():
    rng = np.random.default_rng(2)
    fake = np.abs(rng.standard_normal((1200, 32)) + 0.05)
    real = np.abs(rng.standard_normal((900, 32)))
    shared = kid_features_to_metric(fake, real, subsets=100, subset_size=400, dots=PairDots(fake, real))
    alone = kid_features_to_metric(fake, real, subsets=100, subset_size=400)
    assert shared["mean"] == pytest.approx(alone["mean"], rel=1e-12)
    assert shared["std"] == pytest.approx(alone["std"], rel=1e-11)


def _fid_terms_both_routes(x1, x2):
    xc1, xc2 = x1 - x1.mean(0), x2 - x2.mean(0)
    return _gram_terms(x1, x2, xc1, xc2), _factor_terms(xc1, xc2)


@pytest.mark.parametrize("dead", ["none", "fake", "real", "both", "all_fake"])
def test_fid_gram_route_matches_the_qr_route(dead):
    # FID's two routes (fid.py): Gram matrices + Cholesky where both N > D and the covariances are positive
    # definite once constant features are left out, thin QR + SVD otherwise. Constant (dead) features keep the
    # Gram route and change nothing.
    rng = np.random.default_rng(3)
    x1, x2 = np.abs(rng.standard_normal((400, 48)) + 0.3), np.abs(1.1 * rng.standard_normal((500, 48)))
    if dead in ("fake", "both"):
        x1[:, :5] = 0.0
    if dead in ("real", "both"):
        x2[:, 3:9] = 0.7
    if dead == "all_fake":
        x1[:] = 0.25
    gram_terms, qr_terms = _fid_terms_both_routes(x1, x2)
    assert gram_terms is not None
    np.testing.assert_allclose(gram_terms, qr_terms, rtol=1e-13, atol=1e-11)


def test_fid_gram_route_declines_numerically_singular_covariances():
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((400, 48)), rng.standard_normal((500, 48))
    dup = np.hstack([x1, x1[:, :4]]), np.hstack([x2, x2[:, :4]])  # duplicated features: Cholesky fails
    w = rng.standard_normal((10, 48))
    low = rng.standard_normal((400, 10)) @ w + 1e-6 * x1, rng.standard_normal((500, 10)) @ w  # near a subspace
    for x1_, x2_ in (dup, low):
        assert _fid_terms_both_routes(x1_, x2_)[0] is None
        assert fid_from_features(x1_, x2_) == pytest.approx(_qr_fid(x1_, x2_), rel=1e-12)


def _qr_fid(x1, x2):
    (s1, s2, nuclear), n1, n2 = _fid_terms_both_routes(x1, x2)[1], len(x1) - 1, len(x2) - 1
    diff = x1.mean(0) - x2.mean(0)
    return diff @ diff + s1 / n1 + s2 / n2 - 2 * nuclear / np.sqrt(n1 * n2)
