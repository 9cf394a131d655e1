"""The training engine: loop, checkpoints, EMA, logging. Shared by every recipe."""

from belamy.train.loop import Run, TrainingDiverged, resolve_config, train

__all__ = ["Run", "TrainingDiverged", "resolve_config", "train"]
