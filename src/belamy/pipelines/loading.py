"""Find what to load in a folder: a finished model, or a run's newest checkpoint; pick the pipeline for its task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from belamy.pipelines.generator import MODEL_CONFIG, MODEL_WEIGHTS, GeneratorPipeline, LoadError, read_model_folder
from belamy.pipelines.image_to_image import ImageToImagePipeline


def load_pipeline(path: Path, device: str = "cpu") -> GeneratorPipeline | ImageToImagePipeline:
    if not path.is_dir():
        raise LoadError(f"{path} is not a folder: give a run folder (runs/NAME) or a model folder")
    if (path / MODEL_CONFIG).is_file() and (path / MODEL_WEIGHTS).is_file():
        generator, config = read_model_folder(path)
    else:
        generator, config = _from_checkpoint(path)
    task = config.get("task", "sample")
    if task == "text":
        from belamy.pipelines.text_to_image import TextToImagePipeline

        return TextToImagePipeline(generator, config, torch.device(device))
    pipeline = GeneratorPipeline if task == "sample" else ImageToImagePipeline
    return pipeline(generator, config, torch.device(device))


def _from_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    from belamy.data.base import DataInfo
    from belamy.recipes import RECIPES
    from belamy.train import checkpoint as ckpt

    found = ckpt.list_checkpoints(path / "checkpoints")
    if not found:
        raise LoadError(f"{path} holds neither {MODEL_CONFIG} + {MODEL_WEIGHTS} nor a checkpoint: "
                        f"is it a belamy run folder?")
    nets, _, state = ckpt.load_checkpoint(found[-1])
    config, data = state["config"], DataInfo.from_json(state["data"])
    recipe = RECIPES.get(config["model"])
    options = recipe.parse_options(config["options"])
    generator = recipe.build_generator(options, data)
    name = "G_ema" if any(k.startswith("G_ema.") for k in nets) else "G"
    generator.load_state_dict(ckpt.unflatten(nets, name))
    model_config = {"recipe": config["model"], "options": config["options"], "data": state["data"],
                    "latent_dim": generator.latent_dim,
                    "num_classes": data.num_classes if recipe.conditional(options, data) else 0,
                    "task": recipe.task, "run": path.name, "name": path.resolve().name, "step": state["step"]}
    return generator, model_config
