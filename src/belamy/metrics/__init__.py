"""Measuring GANs: feature-level metrics (FID, KID, IS, precision/recall, density/coverage), mode coverage on 2-D
mixtures, and an in-domain classifier for labeled images. Argument order: fake first, real second.

Image-level API (api.py): `evaluate(real, fake, metrics=...)`, `fid`, `kid`, `inception_score`, `precision_recall`,
`density_coverage` take (real, fake) and any input sources.py accepts; feature extractors (extractors/) are
registered by name; reference statistics carry fingerprints (reference.py). The names `fid`, `kid` and
`inception_score` below are those functions; the modules of the same names stay importable with
`from belamy.metrics.fid import ...`."""

from belamy.metrics.fid import StreamingStatistics, features_to_statistics, fid_from_features, frechet_distance
from belamy.metrics.inception_score import is_logits_to_metric
from belamy.metrics.kid import kid_features_to_metric
from belamy.metrics.modes import mode_coverage
from belamy.metrics.prdc import density_coverage_features_to_metric, features_to_knn_radii, \
    precision_recall_features_to_metric

# The image-level API last: its `fid`, `kid` and `inception_score` functions take over those attribute names from
# the submodules imported above.
from belamy.metrics.api import METRICS, MetricSettings, compute_features, density_coverage, evaluate, fid, \
    format_table, inception_score, kid, precision_recall
from belamy.metrics.extractors import EXTRACTORS, RESIZERS, ExtractorError, FeatureExtractor, \
    MissingWeightsError, load_extractor
from belamy.metrics.reference import FeatureSet, Fingerprint, FingerprintMismatchError, StatsFileError, \
    load_stats, save_stats

__all__ = ["EXTRACTORS", "METRICS", "RESIZERS", "ExtractorError", "FeatureExtractor", "FeatureSet", "Fingerprint",
           "FingerprintMismatchError", "MetricSettings", "MissingWeightsError", "StatsFileError", "compute_features",
           "density_coverage", "evaluate", "fid", "format_table", "inception_score", "kid", "load_extractor",
           "load_stats", "precision_recall", "save_stats",
           "StreamingStatistics", "density_coverage_features_to_metric", "features_to_knn_radii",
           "features_to_statistics", "fid_from_features", "frechet_distance", "is_logits_to_metric",
           "kid_features_to_metric", "mode_coverage", "precision_recall_features_to_metric"]
