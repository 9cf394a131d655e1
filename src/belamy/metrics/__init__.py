"""Measuring GANs: mode coverage on 2-D mixtures, an in-domain classifier for labeled images."""

from belamy.metrics.modes import mode_coverage

__all__ = ["mode_coverage"]
