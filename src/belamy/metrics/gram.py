"""Dot products of two feature sets, formed once and shared by the metrics that need them.

KID's kernels (kid.py) are functions of x.y, and the k-NN balls of precision/recall and density/coverage (prdc.py)
are decided from |x|^2 + |y|^2 - 2 x.y: on the same features they need the same three matrices, fake x fake^T,
real x real^T and fake x real^T. Formed once, they serve every metric, and KID's 100 subsets come from one pass
over each matrix instead of 300 matrix products. Within-set products are symmetric, which BLAS computes with half the arithmetic
(numpy calls syrk for x @ x.T).

Each matrix is formed only when it fits in `max_bytes` (1 GiB by default: 11,585 x 11,585 float64); above that,
the metrics compute what they need chunk by chunk, as without this cache. Values differ from chunked products only
by summation order (~1e-16 relative per entry); prdc.py's decisions are exact either way.
"""

from __future__ import annotations

import numpy as np

WHOLE_GRAM_BYTES = 1 << 30


class PairDots:
    """Lazily formed float64 dot products of fake [N, D] and real [M, D] features (the arrays are kept, not
    copied: they must not change while this object is in use)."""

    def __init__(self, fake: np.ndarray, real: np.ndarray, max_bytes: int | None = None) -> None:
        if fake.dtype != np.float64 or real.dtype != np.float64 or fake.ndim != 2 or real.ndim != 2 \
                or fake.shape[1] != real.shape[1]:
            raise ValueError(f"PairDots needs float64 [N, D] and [M, D] arrays, got {fake.dtype} {fake.shape} "
                             f"and {real.dtype} {real.shape}")
        self.fake, self.real = fake, real
        self.max_bytes = WHOLE_GRAM_BYTES if max_bytes is None else max_bytes
        self._cache: dict[str, np.ndarray | None] = {}

    def matches(self, fake: np.ndarray, real: np.ndarray) -> bool:
        """Whether these are the arrays the products are of (the metrics check before using them)."""
        def same(a: np.ndarray, b: np.ndarray) -> bool:
            return a is b or (a.shape == b.shape and np.array_equal(a, b))

        return same(fake, self.fake) and same(real, self.real)

    def _get(self, key: str, a: np.ndarray, b: np.ndarray | None) -> np.ndarray | None:
        if key not in self._cache:
            rows, cols = len(a), len(a if b is None else b)
            fits = rows * cols * 8 <= self.max_bytes
            self._cache[key] = None if not fits else (a @ a.T if b is None else a @ b.T)
        return self._cache[key]

    def fake_fake(self) -> np.ndarray | None:
        """fake @ fake.T [N, N], or None when it does not fit."""
        return self._get("ff", self.fake, None)

    def real_real(self) -> np.ndarray | None:
        """real @ real.T [M, M], or None when it does not fit."""
        return self._get("rr", self.real, None)

    def fake_real(self) -> np.ndarray | None:
        """fake @ real.T [N, M], or None when it does not fit."""
        return self._get("fr", self.fake, self.real)


def within_dots(x: np.ndarray, max_bytes: int | None = None) -> np.ndarray | None:
    """x @ x.T [N, N] (a symmetric product: half the work of a general one) when it fits in max_bytes (default
    WHOLE_GRAM_BYTES), else None."""
    limit = WHOLE_GRAM_BYTES if max_bytes is None else max_bytes
    return x @ x.T if len(x) * len(x) * 8 <= limit else None
