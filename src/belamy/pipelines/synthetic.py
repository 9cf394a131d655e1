"""Synthetic labeled data from a conditional generator: a class-conditional model samples each class, a text-to-image
model draws a prompt per class. The folder it writes is a labeled image folder (class subfolders) that belamy and
other tools read as training data, with a manifest of what made each image."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from belamy.pipelines.generator import GeneratorPipeline
from belamy.pipelines.text_to_image import TextToImagePipeline

MANIFEST = "manifest.csv"


def class_names(model: GeneratorPipeline) -> list[str]:
    names = list(model.data.class_names) or [str(i) for i in range(model.data.num_classes)]
    if not names:
        raise ValueError(f"{model.config.get('name', 'this model')} ({model.config.get('recipe')}) has no classes: "
                         f"synthetic labeled data needs a class-conditional or text-to-image model trained on labeled "
                         f"data")
    return names


def class_prompts(model: TextToImagePipeline, given: dict[str, str] | None = None) -> dict[str, str]:
    """A prompt per class: the given ones, else "a NAME" (the class name in the model's words)."""
    given = dict(given or {})
    names = class_names(model)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"prompts name classes the model does not have: {unknown} (classes: {', '.join(names)})")
    return {name: given.get(name, f"a {name}") for name in names}


def synthesize(model: GeneratorPipeline, n_per_class: int, seed: int = 0, prompts: dict[str, str] | None = None,
               batch_size: int = 64) -> tuple[Tensor, Tensor, list[str]]:
    """(images [K * n, C, H, W] in [-1, 1], labels [K * n], the condition of each class) for the K classes. Class k
    uses seed + k, so a class's images do not depend on how many classes come before it."""
    if n_per_class < 1:
        raise ValueError(f"n per class must be >= 1, got {n_per_class}")
    names = class_names(model)
    images, conditions = [], []
    if isinstance(model, TextToImagePipeline):
        for k, (name, prompt) in enumerate(class_prompts(model, prompts).items()):
            images.append(model.generate(prompt, n_per_class, seed=seed + k))
            conditions.append(prompt)
    else:
        if not model.num_classes:
            raise ValueError(f"{model.config.get('recipe')} model is not class-conditional: it cannot be asked for a "
                             f"class (train cgan, or text2img with prompts)")
        if prompts:
            raise ValueError("prompts apply to text-to-image models; this model is class-conditional")
        for k, name in enumerate(names):
            images.append(model.sample(n_per_class, seed=seed + k, class_label=k, batch_size=batch_size))
            conditions.append(f"class {name}")
    labels = torch.arange(len(names)).repeat_interleave(n_per_class)
    return torch.cat(images), labels, conditions


def write_synthetic_folder(model: GeneratorPipeline, out: str | Path, n_per_class: int, seed: int = 0,
                           prompts: dict[str, str] | None = None, watermark: bool = False) -> dict[str, Any]:
    """out/CLASS/SEED-INDEX.png for every class, each PNG with provenance, and out/manifest.csv (file, class, label,
    seed, index, condition). Returns {"images", "classes", "manifest"}."""
    from belamy.provenance import provenance_text
    from belamy.utils.images import save_png, to_pil

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: synthetic data goes into a new folder (a mix of runs would be "
                         f"mislabeled in its manifest)")
    images, labels, conditions = synthesize(model, n_per_class, seed, prompts)
    names = class_names(model)
    rows = []
    for i, (image, label) in enumerate(zip(to_pil(images), labels.tolist())):
        index, class_seed = i % n_per_class, seed + label
        relative = Path(_folder_name(names[label])) / f"{class_seed:06d}-{index:05d}.png"
        save_png(image, out / relative, provenance_text(model.config, class_seed, conditions[label],
                                                        index=index), watermark)
        rows.append({"file": relative.as_posix(), "class": names[label], "label": label, "seed": class_seed,
                     "index": index, "condition": conditions[label]})
    manifest = out / MANIFEST
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"images": len(rows), "classes": names, "manifest": str(manifest)}


def _folder_name(name: str) -> str:
    """A class name as a safe folder name (no separators, no leading dot)."""
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in name).strip() or "class"
    return safe if not safe.startswith(".") else f"_{safe}"
