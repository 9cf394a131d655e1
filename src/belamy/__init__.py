"""belamy: train, evaluate and use Generative Adversarial Networks.

    import belamy
    run = belamy.train(model="dcgan", data="mnist", steps=2000)
    g = belamy.load(run.path)
    images = g.sample(16, seed=0)          # tensor in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# The engine's subpackage is also called `train`: import it first so that the function below, not the
# subpackage, is what `belamy.train` names.
import belamy.train as _engine  # noqa: E402

__all__ = ["__version__", "load", "train"]


def train(config: Any = None, *, resume: str | Path | None = None, overwrite: bool = False, progress: bool = True,
          **overrides: Any):
    """Train a GAN and return its Run (`.path`, `.config`, `.step`, `.load()`).

    Keyword arguments are named like the CLI flags: model, data, resolution, batch_size, steps, epochs, lr_g, lr_d,
    loss, seed, name, out, options={...}, ... (see belamy.config.TrainConfig). `config` may be a TrainConfig or the
    path of a YAML file; keyword arguments override it."""
    from belamy.config import TrainConfig

    if isinstance(config, (str, Path)):
        config = TrainConfig.load(config)
    return _engine.train(config, resume=resume, overwrite=overwrite, progress=progress, **overrides)


def load(path: str | Path, device: str = "cpu"):
    """A trained model from a run folder or a model folder (config.json + model.safetensors).

    A run that has not finished yet is loaded from its newest checkpoint."""
    from belamy.pipelines.loading import load_pipeline

    return load_pipeline(Path(path), device)
