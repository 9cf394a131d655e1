"""The image-level metrics API: `evaluate(real, fake, metrics=...)` and one function per metric.

    from belamy import metrics
    metrics.fid("mnist", "runs/dcgan-mnist")                       # the classifier extractor: mnist is labeled
    metrics.evaluate("digits", g, metrics=("fid", "kid", "pr"), n=2000)
    metrics.fid("photos/", "samples/", extractor="inception", weights="pt_inception-2015-12-05-6726825d.pth")

Stages, each its own function: inputs -> FeatureSet (sources.open_source, sources.measure; reference statistics
cached with a fingerprint) -> fingerprint check (reference.check_comparable) -> metric (the feature-level functions
of fid.py, kid.py, inception_score.py, prdc.py). Argument order here is (real, fake), as the issue's API reads; the
feature-level functions take (fake, real) as torch-fidelity does. Every keyword names what it changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from belamy.metrics.extractors import EXTRACTORS, FeatureExtractor, load_extractor
from belamy.metrics.extractors.base import ExtractorError
from belamy.metrics.fid import as_feature_pair, fid_from_features, frechet_distance
from belamy.metrics.gram import PairDots
from belamy.metrics.inception_score import is_logits_to_metric
from belamy.metrics.kid import kid_features_to_metric
from belamy.metrics.prdc import density_coverage_features_to_metric, precision_recall_features_to_metric
from belamy.metrics.reference import FeatureSet, check_comparable
from belamy.metrics.sources import ImageSource, Source, measure, open_source
from belamy.registry import Registry

# Result keys (constants, as torch-fidelity names its results).
KEY_FID = "fid"
KEY_KID, KEY_KID_STD = "kid", "kid_std"
KEY_IS, KEY_IS_STD = "is", "is_std"
KEY_PRECISION, KEY_RECALL = "precision", "recall"
KEY_DENSITY, KEY_COVERAGE = "density", "coverage"
KEY_CLASSES_COVERED, KEY_CLASS_KL, KEY_CLASS_ACCURACY = "classes_covered", "class_kl", "class_accuracy"

DEFAULT_METRICS: tuple[str, ...] = ("fid", "kid", "pr")


@dataclass(frozen=True)
class MetricSettings:
    """The metrics' own parameters (defaults: torch-fidelity's and the papers')."""

    kid_subsets: int = 100
    kid_subset_size: int | None = None  # None: min(1000, fake count, real count), reported in the result
    pr_k: int = 3  # Kynkaanniemi et al. 2019
    dc_k: int = 5  # Naeem et al. 2020
    is_splits: int = 10
    chunk_size: int = 1000  # rows of a distance matrix held at once (k-NN metrics)


class MetricInputs:
    """What a metric is computed from: both feature sets, the settings, and their dot products, formed once on
    first use and shared by KID, precision/recall and density/coverage (gram.PairDots)."""

    def __init__(self, fake: FeatureSet, real: FeatureSet | None, settings: MetricSettings) -> None:
        self.fake, self.real, self.settings = fake, real, settings
        self._dots: PairDots | None = None
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def need_real(self, metric: str) -> FeatureSet:
        if self.real is None:
            raise ValueError(f"{metric} compares two sets: give the real images too")
        return self.real

    def feature_pair(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(fake, real) features as float64, converted once for every metric."""
        if self._arrays is None:
            real = self.need_real(metric)
            self._arrays = as_feature_pair(self.fake.require_features(metric), real.require_features(metric))
        return self._arrays

    def dots(self, metric: str) -> PairDots:
        if self._dots is None:
            self._dots = PairDots(*self.feature_pair(metric))
        return self._dots


# A metric: the inputs -> named values. Registered by the name `metrics=` and the CLI use.
MetricFn = Callable[[MetricInputs], dict[str, Any]]
METRICS: Registry[MetricFn] = Registry("metric")


@METRICS.register("fid", "Frechet Inception Distance (Heusel et al. 2017); lower is better")
def _fid(inputs: MetricInputs) -> dict[str, Any]:
    fake, real = inputs.fake, inputs.need_real("FID")
    if fake.features is not None and real.features is not None:
        # The feature form (fid.py) stays exact when a covariance is singular: N <= D, or features that are always
        # 0 (dead ReLU units), where square roots of rounding noise would cost ~1e-7 relative (~4 s for
        # 10,000 x 2048 on one core).
        return {KEY_FID: fid_from_features(*inputs.feature_pair("FID"))}
    return {KEY_FID: frechet_distance(*fake.statistics(), *real.statistics())}  # a mu/sigma-only file


@METRICS.register("kid", "Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2; lower is better")
def _kid(inputs: MetricInputs) -> dict[str, Any]:
    x, y = inputs.feature_pair("KID")
    settings = inputs.settings
    size = settings.kid_subset_size if settings.kid_subset_size is not None else min(1000, len(x), len(y))
    r = kid_features_to_metric(x, y, subsets=settings.kid_subsets, subset_size=size, dots=inputs.dots("KID"))
    return {KEY_KID: r["mean"], KEY_KID_STD: r["std"], "kid_subset_size": size}


@METRICS.register("is", "Inception Score (Salimans et al. 2016) of the fake images; higher is better")
def _is(inputs: MetricInputs) -> dict[str, Any]:
    r = is_logits_to_metric(inputs.fake.require_logits("the Inception Score"), splits=inputs.settings.is_splits)
    return {KEY_IS: r["mean"], KEY_IS_STD: r["std"]}


@METRICS.register("pr", "improved precision and recall (Kynkaanniemi et al. 2019), k = 3; higher is better")
def _pr(inputs: MetricInputs) -> dict[str, Any]:
    x, y = inputs.feature_pair("precision/recall")
    r = precision_recall_features_to_metric(x, y, k=inputs.settings.pr_k, chunk_size=inputs.settings.chunk_size,
                                            dots=inputs.dots("precision/recall"))
    return {KEY_PRECISION: r["precision"], KEY_RECALL: r["recall"]}


@METRICS.register("dc", "density and coverage (Naeem et al. 2020), k = 5; higher is better")
def _dc(inputs: MetricInputs) -> dict[str, Any]:
    x, y = inputs.feature_pair("density/coverage")
    r = density_coverage_features_to_metric(x, y, k=inputs.settings.dc_k, chunk_size=inputs.settings.chunk_size,
                                            dots=inputs.dots("density/coverage"))
    return {KEY_DENSITY: r["density"], KEY_COVERAGE: r["coverage"]}


@METRICS.register("classes", "the classifier's histogram of fake classes: classes covered, KL to uniform, and for "
                            "class-conditional generators the accuracy on the classes asked for")
def _classes(inputs: MetricInputs) -> dict[str, Any]:
    fake = inputs.fake
    if fake.extractor.get("name") != "classifier":
        raise ValueError("the classes metric reads the in-domain classifier's predictions: use extractor "
                         "'classifier' (labeled data sets)")
    predicted = fake.require_logits("the class histogram").argmax(1)
    k = fake.logits.shape[1]
    p = np.bincount(predicted, minlength=k) / len(predicted)
    covered = p > 0
    result: dict[str, Any] = {KEY_CLASSES_COVERED: int(covered.sum()),
                              KEY_CLASS_KL: float((p[covered] * np.log(p[covered] * k)).sum())}
    if fake.labels is not None:  # does `--class 7` give sevens?
        result[KEY_CLASS_ACCURACY] = float((predicted == fake.labels).mean())
    return result


# --- choosing the extractor ----------------------------------------------------------------------------------------

def _classifier_data_from_stats(stats: FeatureSet):
    """The labeled set a statistics file's classifier was trained on, read as it was (to rebuild that classifier)."""
    from belamy.data import open_data

    name = stats.extractor.get("trained_on")
    if not name:
        raise ExtractorError(f"{stats.source} was measured with a classifier but does not say on which data; "
                             f"pass the labeled data set as the real side")
    size = stats.extractor.get("input_size") or stats.fingerprint.resolution
    return name, open_data(name, size, stats.extractor.get("input_channels"), cache=True)


def resolve_extractor(extractor: str | FeatureExtractor | nn.Module, real: Source | None, fake: Source, *,
                      weights: str | Path | None, resizer: str, device: str) -> FeatureExtractor:
    """The extractor for `evaluate`. "auto": a statistics file's own extractor; else the classifier when the real
    side is a labeled image set (built-in digits, a folder of class folders), else inception."""
    if not isinstance(extractor, str):
        return load_extractor(extractor, resizer=resizer, device=device)
    name = extractor
    if name == "auto":
        if isinstance(real, FeatureSet) and real.fingerprint.extractor in EXTRACTORS:
            name = real.fingerprint.extractor
        elif isinstance(real, ImageSource) and real.num_classes >= 2 and real.labeled is not None:
            name = "classifier"
        else:
            name = "inception"
    if name != "classifier":
        return load_extractor(name, weights=weights, resizer=resizer, device=device)
    if isinstance(real, ImageSource) and real.labeled is not None:
        return load_extractor("classifier", resizer=resizer, device=device, data=real.labeled(),
                              data_name=real.dataset)
    if isinstance(real, FeatureSet) and real.fingerprint.extractor == "classifier":
        data_name, data = _classifier_data_from_stats(real)
        return load_extractor("classifier", resizer=resizer, device=device, data=data, data_name=data_name)
    raise ExtractorError("the classifier extractor is trained on the real images, which must then be a labeled "
                         "data set (mnist, digits, a folder of class folders); use extractor='inception' otherwise")


# --- evaluate ----------------------------------------------------------------------------------------------------

def evaluate(real: Any, fake: Any, metrics: Sequence[str] = DEFAULT_METRICS,
             extractor: str | FeatureExtractor | nn.Module = "auto", n: int | None = None, *,
             n_real: int | None = None, seed: int = 0, batch_size: int = 64, resolution: int | None = None,
             device: str = "cpu", weights: str | Path | None = None, resizer: str = "clean", cache: bool = True,
             settings: MetricSettings | None = None, progress: bool = False) -> dict[str, Any]:
    """Measure `fake` against `real` (see belamy.metrics.sources for what each may be) and compute `metrics`
    ("fid", "kid", "is", "pr", "dc"; `METRICS.names()`).

    extractor: "auto", "inception", "classifier", a FeatureExtractor or any nn.Module (see load_extractor);
    n: fake images (generators default to 10,000; sets to all of them); n_real: real images (default all);
    seed: the generator's latents (and subsets); resolution: the side data sets and folders are read at (default:
    the fake images' own); weights/resizer/device: for a named extractor; cache: keep reference statistics of data
    sets and folders in BELAMY_HOME/stats.

    Returns {metric values (KEY_* names), "extractor": what it is and its accuracy where it is a classifier,
    "fingerprint": {"fake", "real"}, "settings", "metrics": the names asked for}. Raises FingerprintMismatchError
    when the two sides were measured differently (e.g. a statistics file made with other weights)."""
    settings = settings or MetricSettings()
    names = list(dict.fromkeys(metrics))
    if not names:
        raise ValueError("no metrics asked for")
    for name in names:
        METRICS.get(name)  # unknown names fail before any work, with the list and the closest match

    # (1) open both sides: what each is, how many images, at what resolution
    fake_src = open_source(fake, n=n, seed=seed, resolution=resolution, device=device)
    fake_res = fake_src.resolution if isinstance(fake_src, ImageSource) else fake_src.fingerprint.resolution
    real_src = None
    if real is not None:
        real_src = open_source(real, n=n_real, seed=seed, resolution=resolution or fake_res, device=device)
    elif any(name != "is" for name in names):
        raise ValueError(f"{', '.join(names)} compare two sets: give the real images too")

    # (2) the extractor, only when images are to be measured
    sides = [s for s in (fake_src, real_src) if s is not None]
    ext = None
    if any(isinstance(s, ImageSource) for s in sides):
        ext = resolve_extractor(extractor, real_src, fake_src, weights=weights, resizer=resizer, device=device)

    # (3) features, streamed batch by batch; reference statistics from the cache when their fingerprint matches
    def features(src: Source) -> FeatureSet:
        return measure(src, ext, batch_size, progress, cache) if isinstance(src, ImageSource) else src

    fake_fs = features(fake_src)
    real_fs = features(real_src) if real_src is not None else None

    # (4) never compare sets measured differently
    if real_fs is not None:
        check_comparable(fake_fs.fingerprint, real_fs.fingerprint)

    # (5) the metrics
    result: dict[str, Any] = {}
    inputs = MetricInputs(fake_fs, real_fs, settings)
    for name in names:
        result.update(METRICS.get(name)(inputs))
    info = ext.info() if ext is not None else (real_fs.extractor if real_fs is not None and real_fs.extractor
                                               else fake_fs.extractor)
    result["extractor"] = info or {"name": fake_fs.fingerprint.extractor}
    result["fingerprint"] = {"fake": fake_fs.fingerprint.to_json(),
                             "real": None if real_fs is None else real_fs.fingerprint.to_json()}
    result["settings"] = {**asdict(settings), "seed": seed}
    if "kid" in names and real_fs is not None:
        result["settings"]["kid_subset_size"] = result.pop("kid_subset_size")
    result["metrics"] = names
    skipped = {side: src.skipped for side, src in (("fake", fake_src), ("real", real_src))
               if isinstance(src, ImageSource) and src.skipped}
    if skipped:
        result["skipped_files"] = skipped
    return result


def fid(real: Any, fake: Any, extractor: str | FeatureExtractor | nn.Module = "auto", n: int | None = None,
        **options: Any) -> float:
    """FID of fake against real (Heusel et al. 2017); options as for `evaluate`."""
    return evaluate(real, fake, ("fid",), extractor, n, **options)[KEY_FID]


def kid(real: Any, fake: Any, extractor: str | FeatureExtractor | nn.Module = "auto", n: int | None = None,
        **options: Any) -> dict[str, float]:
    """KID (Binkowski et al. 2018): {"mean", "std", "subset_size"}; options as for `evaluate`."""
    r = evaluate(real, fake, ("kid",), extractor, n, **options)
    return {"mean": r[KEY_KID], "std": r[KEY_KID_STD], "subset_size": r["settings"]["kid_subset_size"]}


def inception_score(fake: Any, extractor: str | FeatureExtractor | nn.Module = "inception", n: int | None = None,
                    **options: Any) -> dict[str, float]:
    """Inception Score of the fake images (Salimans et al. 2016): {"mean", "std"}. With extractor="classifier"
    (and real=... the labeled data it learns from) it is the in-domain "classifier score"."""
    real = options.pop("real", None)
    r = evaluate(real, fake, ("is",), extractor, n, **options)
    return {"mean": r[KEY_IS], "std": r[KEY_IS_STD]}


def precision_recall(real: Any, fake: Any, extractor: str | FeatureExtractor | nn.Module = "auto",
                     n: int | None = None, **options: Any) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019); options as for `evaluate`."""
    r = evaluate(real, fake, ("pr",), extractor, n, **options)
    return {KEY_PRECISION: r[KEY_PRECISION], KEY_RECALL: r[KEY_RECALL]}


def density_coverage(real: Any, fake: Any, extractor: str | FeatureExtractor | nn.Module = "auto",
                     n: int | None = None, **options: Any) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020); options as for `evaluate`."""
    r = evaluate(real, fake, ("dc",), extractor, n, **options)
    return {KEY_DENSITY: r[KEY_DENSITY], KEY_COVERAGE: r[KEY_COVERAGE]}


def compute_features(source: Any, extractor: str | FeatureExtractor | nn.Module = "auto", n: int | None = None, *,
                     seed: int = 0, batch_size: int = 64, resolution: int | None = None, device: str = "cpu",
                     weights: str | Path | None = None, resizer: str = "clean", cache: bool = True,
                     progress: bool = False) -> FeatureSet:
    """Features and statistics of one input, with its fingerprint: save it with `save_stats` to use as custom
    reference statistics ("auto" picks the classifier for labeled data sets, else inception)."""
    src = open_source(source, n=n, seed=seed, resolution=resolution, device=device)
    if isinstance(src, FeatureSet):
        return src
    ext = resolve_extractor(extractor, src, src, weights=weights, resizer=resizer, device=device)
    return measure(src, ext, batch_size, progress, cache)


# --- presenting results ------------------------------------------------------------------------------------------

_ROWS: dict[str, list[tuple[str, str, str | None]]] = {  # metric -> (label, value key, spread key)
    "fid": [("FID", KEY_FID, None)],
    "kid": [("KID", KEY_KID, KEY_KID_STD)],
    "is": [("IS", KEY_IS, KEY_IS_STD)],
    "pr": [("precision", KEY_PRECISION, None), ("recall", KEY_RECALL, None)],
    "dc": [("density", KEY_DENSITY, None), ("coverage", KEY_COVERAGE, None)],
}


def describe_extractor(info: dict[str, Any]) -> str:
    """'classifier (accuracy 0.981 on digits)' or 'inception (clean resize)': the extractor column of tables."""
    name = info.get("name") or "unknown"
    if info.get("accuracy") is not None:
        return f"{name} (accuracy {info['accuracy']:.3f} on {info.get('trained_on')})"
    if info.get("resizer"):
        return f"{name} ({info['resizer']} resize)"
    return name


def format_table(result: dict[str, Any]) -> str:
    """A text table of an `evaluate` result: metric, value, extractor and its accuracy, fingerprint id; then the
    full fingerprints of both sides."""
    from belamy.metrics.reference import Fingerprint

    fake_fp = Fingerprint.from_json(result["fingerprint"]["fake"])
    real_json = result["fingerprint"].get("real")
    real_fp = Fingerprint.from_json(real_json) if real_json else None
    extractor = describe_extractor(result.get("extractor") or {})
    rows = [("metric", "value", "extractor", "fingerprint")]
    for name in result.get("metrics", []):
        for label, key, spread in _ROWS.get(name, [(name, name, None)]):
            if key not in result:
                continue
            value = f"{result[key]:.6g}" + (f" ± {result[spread]:.2g}" if spread and spread in result else "")
            rows.append((label, value, extractor, fake_fp.short_id()))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"fake: {fake_fp.describe()}")
    if real_fp is not None:
        lines.append(f"real: {real_fp.describe()}")
    if "kid" in result.get("metrics", []) and "kid_subset_size" in result.get("settings", {}):
        lines.append(f"KID: {result['settings']['kid_subsets']} subsets of {result['settings']['kid_subset_size']}")
    for side, files in (result.get("skipped_files") or {}).items():
        lines.append(f"{side}: {len(files)} file(s) could not be decoded and were skipped, e.g. {files[0]}")
    return "\n".join(lines)
