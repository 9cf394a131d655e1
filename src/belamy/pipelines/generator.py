"""`GeneratorPipeline`: a trained generator, rebuilt from `config.json` + `model.safetensors`, ready to sample."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from belamy.data.base import DataInfo
from belamy.utils.images import make_grid, scatter_points, to_pil

MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"


class LoadError(ValueError):
    pass


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents a and b [D] at fractions t [S] -> [S, D] (White 2016, "Sampling
    Generative Networks"): Gaussian latents concentrate on a sphere, and a straight line would cut through its
    low-density interior."""
    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.arccos((a_n * b_n).sum().clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:  # (almost) parallel: plain linear interpolation is exact enough
        return torch.lerp(a[None], b[None], t[:, None])
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a + (torch.sin(t * omega) / so)[:, None] * b


def read_model_folder(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(the generator, its config) from a model folder: config.json names the recipe that rebuilds the network,
    model.safetensors holds its weights (no code is loaded)."""
    config_path, weights_path = path / MODEL_CONFIG, path / MODEL_WEIGHTS
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LoadError(f"{config_path} cannot be read: {e}") from None
    from belamy.recipes import RECIPES

    recipe = RECIPES.get(config["recipe"])
    generator = recipe.build_generator(recipe.parse_options(config["options"]), DataInfo.from_json(config["data"]))
    try:
        state = load_file(str(weights_path))
    except Exception as e:  # OSError, or safetensors' own error type for a corrupt file
        raise LoadError(f"{weights_path} cannot be read: {e}") from None
    missing, unexpected = generator.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LoadError(f"{weights_path} does not fit the {config['recipe']} generator of {config_path}: "
                        f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    config.setdefault("task", recipe.task)
    config.setdefault("name", path.resolve().name)  # the model's name in the provenance of what it makes
    return generator, config


class GeneratorPipeline:
    """Sampling and latent walks with a trained generator (the EMA weights when the run kept them)."""

    def __init__(self, generator: nn.Module, config: dict[str, Any], device: str | torch.device = "cpu") -> None:
        self.generator = generator.eval().requires_grad_(False).to(device)
        self.config = config
        self.device = torch.device(device)
        self.data = DataInfo.from_json(config["data"])
        self.latent_dim: int = int(config["latent_dim"])
        self.num_classes: int = int(config["num_classes"])

    # --- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, path: str | Path, device: str | torch.device = "cpu") -> "GeneratorPipeline":
        return cls(*read_model_folder(Path(path)), device)

    # --- sampling ------------------------------------------------------------------------------------------------

    def latents(self, n: int, seed: int = 0) -> torch.Tensor:
        """The n latents that `seed` names (the same ones whatever the batch size or device)."""
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    def conditions(self, n: int, class_label: int | str | None = None, prompt: str | None = None,
                   allow_unknown: bool = False) -> torch.Tensor | None:
        """What from_latents takes beside n latents: class labels (None for an unconditional model). A text model's
        pipeline answers prompts with token ids instead."""
        if prompt is not None:
            raise ValueError(f"this {self.config.get('recipe')} model takes no prompt"
                             + (" (it takes a class)" if self.num_classes else ""))
        return self._labels(n, class_label)

    def _labels(self, n: int, class_label: int | str | None) -> torch.Tensor | None:
        if not self.num_classes:
            if class_label is not None:
                raise ValueError(f"this model is unconditional: it takes no class (got {class_label!r})")
            return None
        if class_label is None:  # one of each class in turn: a grid's rows show every class
            return torch.arange(n) % self.num_classes
        index = self.class_index(class_label)
        return torch.full((n,), index, dtype=torch.long)

    def class_index(self, class_label: int | str) -> int:
        names = list(self.data.class_names)
        if isinstance(class_label, str) and class_label in names:
            return names.index(class_label)
        try:
            index = int(class_label)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < self.num_classes:
            raise ValueError(f"class {class_label!r} is not one of this model's {self.num_classes} classes: "
                             f"0..{self.num_classes - 1} or names {', '.join(names)}")
        return index

    @torch.no_grad()
    def from_latents(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                     batch_size: int = 64) -> torch.Tensor:
        """G(z, labels) in chunks of `batch_size` (labels: classes, or caption tokens of text models); returns a
        CPU float tensor ([-1, 1] for images)."""
        outs = []
        for i in range(0, z.shape[0], batch_size):
            zb = z[i:i + batch_size].to(self.device)
            yb = None if labels is None else labels[i:i + batch_size].to(self.device)
            outs.append(self.generator(zb, yb).float().cpu())
        return torch.cat(outs)

    def sample(self, n: int = 16, seed: int = 0, class_label: int | str | None = None,
               batch_size: int = 64) -> torch.Tensor:
        """n samples: images [n, C, H, W] in [-1, 1] (or points [n, D])."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return self.from_latents(self.latents(n, seed), self._labels(n, class_label), batch_size)

    def sample_images(self, n: int = 16, seed: int = 0, class_label: int | str | None = None,
                      batch_size: int = 64) -> list[Image.Image]:
        self._require_images()
        return to_pil(self.sample(n, seed, class_label, batch_size))

    def interpolate(self, steps: int = 8, seed: int = 0, rows: int = 1, class_label: int | str | None = None,
                    batch_size: int = 64) -> torch.Tensor:
        """Latent walks: `rows` walks of `steps` images, each between two latents by slerp -> [rows * steps, ...]."""
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        ends = self.latents(2 * rows, seed)
        t = torch.linspace(0, 1, steps)
        z = torch.cat([slerp(ends[2 * r], ends[2 * r + 1], t) for r in range(rows)])
        labels = self._labels(rows, class_label)
        if labels is not None:
            labels = labels.repeat_interleave(steps)
        return self.from_latents(z, labels, batch_size)

    def grid(self, samples: torch.Tensor, nrow: int | None = None) -> Image.Image:
        """A grid image of images, or a scatter plot of points."""
        if not self.data.is_image:
            return scatter_points(samples, self.config.get("modes") and torch.tensor(self.config["modes"]))
        if nrow is None:
            nrow = self.num_classes if self.num_classes and samples.shape[0] % self.num_classes == 0 \
                else math.ceil(math.sqrt(samples.shape[0]))
        return make_grid(samples, nrow=nrow)

    def _require_images(self) -> None:
        if not self.data.is_image:
            raise ValueError(f"this model generates points of shape {self.data.shape}, not images")
