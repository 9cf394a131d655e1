"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 4):
IS = exp(E_x KL(p(y|x) || p(y))), from classifier logits, in float64.

The score is computed on `splits` disjoint groups of samples and reported as mean and spread over groups, as the
paper's code and torch-fidelity do; with the same settings `is_logits_to_metric` reproduces torch-fidelity 0.4.0."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from belamy.metrics.fid import as_float64_features


def is_logits_to_metric(logits: np.ndarray, splits: int = 10, shuffle: bool = True,
                        seed: int = 2020) -> dict[str, float]:
    """Inception Score of logits [N, C] (pre-softmax): {"mean", "std"} over `splits` groups.

    Group i holds rows [i*N//splits, (i+1)*N//splits) after an optional shuffle by
    np.random.RandomState(seed).permutation(N) (torch-fidelity's defaults: 10 splits, shuffled, seed 2020).
    Per group: p(y) = mean of the rows' softmax, score = exp(mean over rows of KL(p(y|x) || p(y))).
    "std" is np.std (ddof=0) across groups."""
    x = as_float64_features(logits, "logits")
    n = x.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be between 1 and the number of samples ({n}), got {splits}")
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    # log_softmax subtracts the row maximum first, so large logits neither overflow nor lose the small classes.
    log_p = log_softmax(x, axis=1)
    p = np.exp(log_p)
    scores = np.empty(splits)
    for i in range(splits):
        rows = slice(i * n // splits, (i + 1) * n // splits)
        log_py = np.log(p[rows].mean(axis=0))
        # 0 * log 0 = 0: a class a sample gives probability 0 adds nothing to its KL (not NaN from 0 * -inf).
        kl = np.where(p[rows] > 0, p[rows] * (log_p[rows] - log_py), 0.0).sum(axis=1)
        scores[i] = np.exp(kl.mean())
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores))}
