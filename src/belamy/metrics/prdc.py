"""Precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
Models") and density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
Models"), from k-nearest-neighbour balls around feature vectors, in float64.

A set's manifold is the union of closed balls around its points, each ball's radius being the distance from the
point to its k-th nearest neighbour in its own set (the point itself excluded). Argument order: fake first, real
second (torch-fidelity's convention). Counts come back with the fractions so results can be compared exactly.

Distances between the two sets are never held all at once: rows are processed `chunk_size` at a time (peak memory
about four float64 matrices of chunk_size x the other set's size: 320 MB for 1,000 x 10,000), and one pass serves
both directions of precision/recall. Within one set (the k-NN radii) the dot products are formed whole when they fit
in gram.WHOLE_GRAM_BYTES (1 GiB: up to 11,585 points), because X X^T is a symmetric product that BLAS computes with half
the arithmetic (syrk); larger sets are done in chunks like the cross distances. Each chunk's squared distances
come from the Gram form |a|^2 + |b|^2 - 2 a.b (one matrix product, fast), and every comparison that this form
cannot decide for certain - those within its rounding-error bound of the threshold - is redone with the direct
sum of squared differences. Decisions, and so counts, are those of difference-based distances (as scipy's
cdist computes them), at close to the speed of a matrix product."""

from __future__ import annotations

import numpy as np

from belamy.metrics.fid import as_feature_pair, as_float64_features
from belamy.metrics.gram import PairDots, within_dots

# Bound on |Gram-form squared distance - direct-form squared distance| per unit (|a| + |b|)^2 and dimension:
# the dot product and the squared norms are within gamma_D = D u of exact whatever the summation order (BLAS
# blocking or FMA included), the direct form within (D + 3) u, with u = eps / 2 the unit roundoff; 4x margin.
_ERROR_PER_DIM = 4 * np.finfo(np.float64).eps


def _error_bound(dim: int, norm_a: np.ndarray, norm_b: np.ndarray) -> np.ndarray:
    bound = np.add.outer(norm_a, norm_b)
    bound *= bound
    bound *= _ERROR_PER_DIM * (dim + 3)
    return bound


def _gram_sq_distances(a: np.ndarray, b: np.ndarray, sq_a: np.ndarray, sq_b: np.ndarray) -> np.ndarray:
    """Approximate squared distances [len(a), len(b)]; see `_error_bound` for how far off they can be."""
    d2 = a @ b.T
    d2 *= -2
    d2 += sq_a[:, None]
    d2 += sq_b[None, :]
    return d2


def _direct_sq_distances(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared distances |a[rows[t]] - b[cols[t]]|^2 summed from differences (no cancellation), a few MB at a time."""
    out = np.empty(len(rows))
    step = max(1, (1 << 19) // a.shape[1])
    for s in range(0, len(rows), step):
        diff = a[rows[s:s + step]] - b[cols[s:s + step]]
        out[s:s + step] = (diff * diff).sum(axis=1)
    return out


def _knn_sq_radii(x: np.ndarray, k: int, chunk_size: int, dots: np.ndarray | None = None) -> np.ndarray:
    """Squared distance from each row of x [N, D] to its k-th nearest neighbour in x, itself excluded [N].

    dots: x @ x.T when the caller has it (gram.PairDots); else formed here when it fits, or chunk by chunk."""
    n, dim = x.shape
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and N - 1 = {n - 1} (a point's neighbours exclude itself), got {k}")
    sq = np.einsum("ij,ij->i", x, x)
    norm = np.sqrt(sq)
    radii = np.empty(n)
    # numpy multiplies x by its own transpose with BLAS syrk: half a general product's work. The error bound below
    # holds for any summation order, so the decisions (and radii) are the same as from the chunked products.
    if dots is None:
        dots = within_dots(x)
    half_sq = sq / 2
    buf = np.empty(min(chunk_size, n) * n)
    for start in range(0, n, chunk_size):
        a = x[start:start + chunk_size]
        m = len(a)
        h = buf[:m * n].reshape(m, n)
        # a_i.x_j - |x_j|^2 / 2 = (|a_i|^2 - d_ij^2) / 2: the squared Gram-form distance, shifted by the same |a_i|^2
        # along a row and scaled by -1/2 (exactly: a power of 2), so the nearest points have the largest values.
        if dots is None:
            np.matmul(a, x.T, out=h)
            h -= half_sq[None, :]
        else:
            np.subtract(dots[start:start + m], half_sq[None, :], out=h)
        h[np.arange(m), start + np.arange(m)] = half_sq[start:start + m]  # a point's distance to itself is exactly 0
        # The k + 1 largest (the point itself is the 0th neighbour: torch-fidelity's kthvalue(k + 1)).
        top = np.argpartition(h, n - 1 - k, axis=1)[:, n - 1 - k:]  # [m, k + 1]
        h_k = h[np.arange(m), top[:, 0]]
        # Every point whose true distance could be at or below the true k-th one lies within twice the largest
        # error bound of the approximate k-th value (half that here, on the halved scale); recompute those
        # exactly and take the k-th of them. Usually they are the k + 1 found; near-ties add a few.
        threshold = h_k - _error_bound(dim, norm[start:start + m], norm.max()[None])[:, 0]
        near = h >= threshold[:, None]
        more = np.flatnonzero(np.count_nonzero(near, axis=1) > k + 1)
        rows, cols = np.repeat(np.arange(m), k + 1), top.ravel()
        if len(more):
            keep = ~np.isin(rows, more)
            extra_rows, extra_cols = np.nonzero(near[more])
            rows = np.concatenate([rows[keep], more[extra_rows]])
            cols = np.concatenate([cols[keep], extra_cols])
        exact = _direct_sq_distances(a, x, rows, cols)
        order = np.lexsort((exact, rows))  # each row's candidates together, nearest first
        first = np.searchsorted(rows[order], np.arange(m))
        radii[start:start + m] = exact[order][first + k]
    return radii


def _chunk_sq_distances(a: np.ndarray, b: np.ndarray, sq_a: np.ndarray, sq_b: np.ndarray,
                        dots: np.ndarray | None) -> np.ndarray:
    """Gram-form squared distances of a chunk of rows `a` to `b`, from their precomputed dot products when given."""
    if dots is None:
        return _gram_sq_distances(a, b, sq_a, sq_b)
    d2 = dots * -2
    d2 += sq_a[:, None]
    d2 += sq_b[None, :]
    return d2


def _count_in_balls(points: np.ndarray, centres: np.ndarray, sq_radii: np.ndarray,
                    chunk_size: int, dots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For closed balls around `centres` [M, D] of squared radii [M]: how many balls hold each point [N] (int),
    and whether each ball holds any point [M] (bool). dots: points @ centres.T, when the caller has it."""
    dim = points.shape[1]
    sq_p, sq_c = np.einsum("ij,ij->i", points, points), np.einsum("ij,ij->i", centres, centres)
    norm_p, norm_c = np.sqrt(sq_p), np.sqrt(sq_c)
    per_point = np.empty(len(points), dtype=np.int64)
    ball_hit = np.zeros(len(centres), dtype=bool)
    for start in range(0, len(points), chunk_size):
        a = points[start:start + chunk_size]
        m = len(a)
        g = _chunk_sq_distances(a, centres, sq_p[start:start + m], sq_c,
                                None if dots is None else dots[start:start + m])
        g -= sq_radii[None, :]  # now > 0 outside a ball, <= 0 inside (closed balls)
        inside = g <= 0
        rows, cols = np.nonzero(np.abs(g) <= _error_bound(dim, norm_p[start:start + m], norm_c))
        if len(rows):  # too close to call from the Gram form: decide by the direct distance
            inside[rows, cols] = _direct_sq_distances(a, centres, rows, cols) <= sq_radii[cols]
        per_point[start:start + m] = inside.sum(axis=1)
        ball_hit |= inside.any(axis=0)
    return per_point, ball_hit


def _count_in_balls_both_ways(x: np.ndarray, y: np.ndarray, sq_radii_x: np.ndarray, sq_radii_y: np.ndarray,
                              chunk_size: int, dots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """With closed balls around every point of x [N, D] and of y [M, D] (squared radii [N], [M]): whether each x
    lies in some y ball [N] (bool), and whether each y lies in some x ball [M] (bool).

    The same decisions as two `_count_in_balls` calls (x in y's balls, y in x's balls), from one pass over the
    x-y distances instead of two, and from margins rather than pair-by-pair comparisons: x_i is in some y ball when
    min_j (d_ij - r_j) <= 0, and y_j in some x ball when min_i (d_ij - r_i) <= 0, so each chunk costs two sums and
    two minima of its Gram-form distances. A margin within the largest error bound of its row (or column) is
    decided by direct distances, for the pairs of that row (column) within the bound of their radius; every other
    pair's Gram-form decision is certain. dots: x @ y.T, when the caller has it."""
    dim = x.shape[1]
    sq_x, sq_y = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    norm_x, norm_y = np.sqrt(sq_x), np.sqrt(sq_y)
    # One bound per point for all its pairs: the pair bound with the other set's largest norm.
    bound_x = _error_bound(dim, norm_x, norm_y.max()[None])[:, 0]  # [N]
    bound_y = _error_bound(dim, norm_x.max()[None], norm_y)[0]  # [M]
    shift_y = sq_y - sq_radii_y  # [M]
    x_in_y = np.empty(len(x), dtype=bool)
    y_in_x = np.zeros(len(y), dtype=bool)
    t_buf, e_buf = (np.empty(min(chunk_size, len(x)) * len(y)) for _ in range(2))  # reused by every chunk
    for start in range(0, len(x), chunk_size):
        a = x[start:start + chunk_size]
        m = len(a)
        t = t_buf[:m * len(y)].reshape(m, len(y))
        if dots is None:
            np.matmul(a, y.T, out=t)
            t *= -2
        else:
            np.multiply(dots[start:start + m], -2, out=t)  # -2 a_i.y_j [m, M]
        # x_i in y balls: e_ij + |x_i|^2 = d_ij - r_y_j (Gram form)
        e = np.add(t, shift_y[None, :], out=e_buf[:t.size].reshape(t.shape))
        row_margin = e.min(axis=1) + sq_x[start:start + m]
        x_in_y[start:start + m] = row_margin <= 0
        for i in np.flatnonzero(np.abs(row_margin) <= bound_x[start:start + m]):  # rare: too close to call
            cols = np.flatnonzero(np.abs(e[i] + sq_x[start + i]) <= bound_x[start + i])
            exact = _direct_sq_distances(a, y, np.full(len(cols), i), cols)
            x_in_y[start + i] = bool((exact <= sq_radii_y[cols]).any())  # every other pair is surely outside
        # y_j in x balls: t_ij + |y_j|^2 = d_ij - r_x_i (Gram form)
        t += (sq_x[start:start + m] - sq_radii_x[start:start + m])[:, None]
        col_margin = t.min(axis=0) + sq_y
        y_in_x |= col_margin < -bound_y  # surely inside some ball of this chunk
        for j in np.flatnonzero(np.abs(col_margin) <= bound_y):  # rare: too close to call within this chunk
            rows = np.flatnonzero(np.abs(t[:, j] + sq_y[j]) <= bound_y[j])
            exact = _direct_sq_distances(a, y, rows, np.full(len(rows), j))
            y_in_x[j] |= bool((exact <= sq_radii_x[start + rows]).any())
    return x_in_y, y_in_x


def _check_pair(fake: np.ndarray, real: np.ndarray, chunk_size: int,
                dots: PairDots | None) -> tuple[np.ndarray, np.ndarray, PairDots | None]:
    x, y = as_feature_pair(fake, real)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if dots is not None and not dots.matches(x, y):
        raise ValueError("dots were formed from other features than the fake and real given")
    return x, y, dots


def features_to_knn_radii(features: np.ndarray, k: int, chunk_size: int = 1000) -> np.ndarray:
    """Distance from each feature vector [N, D] to its k-th nearest neighbour in the same set, itself excluded [N].

    Duplicated points count as neighbours at distance 0."""
    x = as_float64_features(features, "features")
    return np.sqrt(_knn_sq_radii(x, k, chunk_size))


def precision_recall_features_to_metric(fake: np.ndarray, real: np.ndarray, k: int = 3, chunk_size: int = 1000,
                                        dots: PairDots | None = None) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, sec. 2), k = 3 as in the paper.

    precision = fraction of fake samples inside some real sample's k-NN ball (fidelity);
    recall = fraction of real samples inside some fake sample's k-NN ball (diversity).
    Returns precision, recall, f_score (2pr / (p + r), torch-fidelity's), precision_count and recall_count
    (ints, the numerators), with fractions in float64 (torch-fidelity rounds them to float32).
    dots: the features' dot products when another metric shares them (gram.PairDots(fake, real))."""
    x, y, dots = _check_pair(fake, real, chunk_size, dots)
    ff, rr, fr = (None, None, None) if dots is None else (dots.fake_fake(), dots.real_real(), dots.fake_real())
    fake_in_real, real_in_fake = _count_in_balls_both_ways(x, y, _knn_sq_radii(x, k, chunk_size, ff),
                                                           _knn_sq_radii(y, k, chunk_size, rr), chunk_size, fr)
    precision_count, recall_count = int(np.count_nonzero(fake_in_real)), int(np.count_nonzero(real_in_fake))
    precision, recall = precision_count / len(x), recall_count / len(y)
    return {"precision": precision, "recall": recall,
            "f_score": 2 * precision * recall / max(1e-5, precision + recall),  # torch-fidelity's guard against 0/0
            "precision_count": precision_count, "recall_count": recall_count}


def density_coverage_features_to_metric(fake: np.ndarray, real: np.ndarray, k: int = 5, chunk_size: int = 1000,
                                        dots: PairDots | None = None) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020, sec. 3), k = 5 as in the paper; only real samples get balls, so
    that outliers among the fakes cannot inflate the manifold.

    density = (1 / (k M)) sum_j sum_i 1[d(real_i, fake_j) <= NND_k(real_i)] over M fake, N real samples: how many
    real balls hold a fake on average, relative to k (not capped at 1; about 1 when fake and real match).
    coverage = (1 / N) sum_i 1[some fake lies in real_i's ball]: the share of real neighbourhoods reached.
    Returns density, coverage, density_count (the double sum) and coverage_count (ints).
    dots: the features' dot products when another metric shares them (gram.PairDots(fake, real))."""
    x, y, dots = _check_pair(fake, real, chunk_size, dots)
    rr, fr = (None, None) if dots is None else (dots.real_real(), dots.fake_real())
    balls_per_fake, real_ball_hit = _count_in_balls(x, y, _knn_sq_radii(y, k, chunk_size, rr), chunk_size, fr)
    density_count, coverage_count = int(balls_per_fake.sum()), int(np.count_nonzero(real_ball_hit))
    return {"density": density_count / (k * len(x)), "coverage": coverage_count / len(y),
            "density_count": density_count, "coverage_count": coverage_count}
