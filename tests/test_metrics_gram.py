"""Dot products shared between metrics (belamy.metrics.gram): every path gives the same decisions and values as
the chunked products, whether the matrices are formed whole, shared, or too big to form."""

from __future__ import annotations

import numpy as np
import pytest

from belamy.metrics import gram
from belamy.metrics.gram import PairDots
from belamy.metrics.kid import kid_features_to_metric
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
