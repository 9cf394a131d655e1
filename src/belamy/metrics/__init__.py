"""Measuring GANs: feature-level metrics (FID, KID, IS, precision/recall, density/coverage), mode coverage on 2-D
mixtures, and an in-domain classifier for labeled images. Argument order: fake first, real second."""

from belamy.metrics.fid import StreamingStatistics, features_to_statistics, fid_from_features, frechet_distance
from belamy.metrics.inception_score import is_logits_to_metric
from belamy.metrics.kid import kid_features_to_metric
from belamy.metrics.modes import mode_coverage
from belamy.metrics.prdc import density_coverage_features_to_metric, features_to_knn_radii, \
    precision_recall_features_to_metric

__all__ = ["StreamingStatistics", "density_coverage_features_to_metric", "features_to_knn_radii",
           "features_to_statistics", "fid_from_features", "frechet_distance", "is_logits_to_metric",
           "kid_features_to_metric", "mode_coverage", "precision_recall_features_to_metric"]
