"""Features and statistics of an image set, with the fingerprint of how they were made, saved as .npz.

A number like FID is only meaningful between two sets measured the same way: same feature extractor and weights,
same resizer, same image resolution. Every `FeatureSet` therefore carries a `Fingerprint` (data set and split, number
of images, resolution, resizer, extractor and a hash of its weights), and `check_comparable` refuses - naming the
fields - to compare two sets whose measurement differs, instead of returning a silently wrong number.

File format (`save_stats` / `load_stats`; plain arrays only, loaded with allow_pickle=False):
    mu [D] float64, sigma [D, D] float64     the Gaussian FID compares (pytorch-fid's and clean-fid's key names)
    features [N, D] float32                  optional: KID and precision/recall/density/coverage need them
    logits [N, K] float32                    optional: the Inception Score needs them
    fingerprint                              JSON text of the Fingerprint
    extractor                                JSON text: what the extractor reported (e.g. a classifier's accuracy)
    format                                   "belamy-stats-1"
Files from pytorch-fid or clean-fid (mu and sigma only) load too, with an unknown fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from belamy.metrics.cache import save_npz_atomic
from belamy.metrics.fid import as_float64_features, features_to_statistics

STATS_FORMAT = "belamy-stats-1"

# Fields that must agree before two sets are compared; data set, split and count may (and usually do) differ.
COMPARED_FIELDS: tuple[str, ...] = ("extractor", "weights_sha256", "resizer", "resolution", "feature_dim")


class FingerprintMismatchError(ValueError):
    """Two feature sets measured differently; the message names every differing field and both values."""


class StatsFileError(ValueError):
    """A statistics file that cannot be read or lacks what a metric needs."""


@dataclass(frozen=True)
class Fingerprint:
    """How a feature set was made. None: not known (raw arrays, files from other tools)."""

    dataset: str | None = None  # built-in name, folder path, "run:NAME", "tensor", ...
    split: str | None = None  # "train" for built-in sets, "all" for folders, "samples seed=S" for generators
    n: int | None = None  # images measured
    resolution: int | None = None  # side of the images before the extractor's own resize
    resizer: str | None = None  # "clean" or "legacy" (belamy.metrics.extractors.RESIZERS)
    extractor: str | None = None  # "inception", "classifier", or a custom extractor's name
    weights_sha256: str | None = None  # hash of the extractor's weights (tensor contents, not the file)
    feature_dim: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Fingerprint":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def known(self) -> bool:
        return self.extractor is not None

    def short_id(self) -> str:
        """8 hex digits naming the measurement (COMPARED_FIELDS): comparable sets share it."""
        key = json.dumps({k: getattr(self, k) for k in COMPARED_FIELDS}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:8]

    def describe(self) -> str:
        """One line for tables and logs."""
        if not self.known and self.dataset is None:
            return "unknown (no fingerprint)"
        w = self.weights_sha256[:12] if self.weights_sha256 else None
        return (f"{self.short_id()}: dataset={self.dataset} split={self.split} n={self.n} "
                f"resolution={self.resolution} resizer={self.resizer} extractor={self.extractor} weights={w} "
                f"dim={self.feature_dim}")


def fingerprint_differences(a: Fingerprint, b: Fingerprint,
                            names: tuple[str, ...] = COMPARED_FIELDS) -> list[tuple[str, Any, Any]]:
    """(field, a's value, b's value) for each of `names` known on both sides that differs."""
    out = []
    for name in names:
        va, vb = getattr(a, name), getattr(b, name)
        if va is not None and vb is not None and va != vb:
            out.append((name, va, vb))
    return out


def check_comparable(fake: Fingerprint, real: Fingerprint) -> None:
    """Raise FingerprintMismatchError naming each COMPARED_FIELDS field that differs (fields unknown on either
    side, e.g. for a file made by another tool, are not checked)."""
    diffs = fingerprint_differences(fake, real)
    if diffs:
        listed = "; ".join(f"{name}: fake {va!r} vs real {vb!r}" for name, va, vb in diffs)
        raise FingerprintMismatchError(
            f"the fake and real features were not measured the same way ({listed}); a metric between them would "
            f"be meaningless. Measure both with the same extractor, weights, resizer and resolution.")


@dataclass
class FeatureSet:
    """Features of one image set (or only their Gaussian), how they were made, and what the extractor reported."""

    fingerprint: Fingerprint
    features: np.ndarray | None = None  # [N, D] float32
    logits: np.ndarray | None = None  # [N, K] float32
    mu: np.ndarray | None = None  # [D] float64
    sigma: np.ndarray | None = None  # [D, D] float64
    extractor: dict[str, Any] = field(default_factory=dict)  # FeatureExtractor.info() of the extractor used
    source: str = ""  # where it came from, for messages (a file path, "features array", ...)
    labels: np.ndarray | None = None  # images of a conditional generator: the class each was asked for (not saved)

    def __post_init__(self) -> None:
        if self.features is None and (self.mu is None or self.sigma is None):
            raise ValueError(f"{self.source or 'a feature set'} needs features or both mu and sigma")

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [D], sigma [D, D]) in float64, computed from the features when not given."""
        if self.mu is None or self.sigma is None:
            self.mu, self.sigma = features_to_statistics(self.features)
        return self.mu, self.sigma

    def require_features(self, metric: str) -> np.ndarray:
        if self.features is None:
            raise StatsFileError(f"{metric} needs the feature vectors, and {self.source or 'this set'} holds only "
                                 f"mu and sigma: recompute it with belamy (which stores the features)")
        return self.features

    def require_logits(self, metric: str) -> np.ndarray:
        if self.logits is None:
            raise StatsFileError(f"{metric} needs classifier logits, and {self.source or 'this set'} has none: "
                                 f"measure images with an extractor that has a classifier head (inception, "
                                 f"classifier)")
        return self.logits


def save_stats(path: str | Path, stats: FeatureSet) -> Path:
    """Write a FeatureSet as .npz (atomically); returns the path."""
    path = Path(path)
    mu, sigma = stats.statistics()
    arrays: dict[str, np.ndarray] = {
        "mu": np.asarray(mu, dtype=np.float64), "sigma": np.asarray(sigma, dtype=np.float64),
        "fingerprint": np.array(json.dumps(stats.fingerprint.to_json(), sort_keys=True)),
        "extractor": np.array(json.dumps(stats.extractor, sort_keys=True, default=str)),
        "format": np.array(STATS_FORMAT),
    }
    if stats.features is not None:
        arrays["features"] = np.asarray(stats.features, dtype=np.float32)
    if stats.logits is not None:
        arrays["logits"] = np.asarray(stats.logits, dtype=np.float32)
    save_npz_atomic(path, arrays)
    return path


def load_stats(path: str | Path) -> FeatureSet:
    """Read a statistics .npz (belamy's, or mu/sigma from pytorch-fid or clean-fid) without unpickling anything."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:  # missing, truncated, not a zip, or an object array inside
        raise StatsFileError(f"{path} cannot be read as a statistics .npz: {e}") from None
    fingerprint, extractor = Fingerprint(), {}
    try:
        if "fingerprint" in arrays:
            fingerprint = Fingerprint.from_json(json.loads(str(arrays["fingerprint"])))
        if "extractor" in arrays:
            extractor = json.loads(str(arrays["extractor"]))
    except (json.JSONDecodeError, TypeError) as e:
        raise StatsFileError(f"{path}: unreadable fingerprint: {e}") from None
    features = arrays.get("features")
    mu, sigma = arrays.get("mu"), arrays.get("sigma")
    if features is None and (mu is None or sigma is None):
        raise StatsFileError(f"{path} holds neither features nor mu and sigma (keys: {', '.join(arrays) or 'none'})")
    if features is not None:
        features = as_float64_features(features, f"{path}: features").astype(np.float32)
    if mu is not None and sigma is not None:
        mu = as_float64_features(mu, f"{path}: mu", ndim=1)
        sigma = as_float64_features(sigma, f"{path}: sigma")
        if sigma.shape != (mu.shape[0],) * 2:
            raise StatsFileError(f"{path}: sigma has shape {sigma.shape}, mu has {mu.shape}")
    if fingerprint.feature_dim is None:  # files from other tools: the dimension is known from the arrays
        dim = features.shape[1] if features is not None else mu.shape[0]
        fingerprint = Fingerprint(**{**fingerprint.to_json(), "feature_dim": int(dim)})
    return FeatureSet(fingerprint, features, arrays.get("logits"), mu, sigma, extractor, source=str(path))
