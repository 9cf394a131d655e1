"""Export a trained generator to ONNX, with its calling convention made explicit and a dynamic batch.

Inputs and outputs by task (all float32 unless said; images in [-1, 1], NCHW):
- sample (noise -> images or points): `z` [B, latent_dim], plus `labels` int64 [B] for class-conditional models;
- text (text-to-image): `z` [B, latent_dim] and `tokens` int64 [B, max_length], right-padded with 0 (the model's
  tokenizer, its vocabulary in the JSON beside the file, turns a prompt into ids: belamy.text.Tokenizer.encode_batch);
- translate / upscale: `image` [B, C, H, W] (for CycleGAN, one direction per file: --direction);
- inpaint: `image` [B, C, H, W] and `mask` [B, 1, H, W] (1 = hole); the output keeps every pixel outside the hole,
  as the Python pipeline does.
The output is `images` (or `points`). The export is checked in onnxruntime against PyTorch when it is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from belamy.pipelines.generator import GeneratorPipeline
from belamy.pipelines.image_to_image import ImageToImagePipeline
from belamy.train.checkpoint import write_json_atomic

OPSET = 17


class _Sampler(nn.Module):
    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: Tensor, condition: Tensor | None = None) -> Tensor:
        return self.generator(z, condition)


class _Translator(nn.Module):
    def __init__(self, generator: nn.Module, reverse: bool) -> None:
        super().__init__()
        self.generator, self.reverse = generator, reverse

    def forward(self, image: Tensor) -> Tensor:
        z = image.new_zeros(image.shape[0], 0)  # image-to-image generators take no latent
        return self.generator(z, image, **({"reverse": True} if self.reverse else {}))


class _Inpainter(nn.Module):
    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        from belamy.recipes.inpaint import hide

        fake = self.generator(image.new_zeros(image.shape[0], 0), hide(image, mask))
        return mask * fake + (1 - mask) * image


def example_inputs(model: GeneratorPipeline | ImageToImagePipeline, batch: int = 2,
                   direction: str | None = None) -> dict[str, Tensor]:
    """Inputs of the exported graph's shapes (seeded): what `export_onnx` traces with and checks parity on."""
    g = torch.Generator().manual_seed(0)
    if isinstance(model, ImageToImagePipeline):
        reverse = model._reverse(direction) if model.task == "translate" else False
        channels = model._input_channels(reverse) if model.task == "translate" else model.data.shape[0]
        side = model.resolution
        inputs = {"image": torch.rand(batch, channels, side, side, generator=g) * 2 - 1}
        if model.task == "inpaint":
            mask = torch.zeros(batch, 1, side, side)
            mask[:, :, side // 4: side // 2, side // 4: 3 * side // 4] = 1
            inputs["mask"] = mask
        return inputs
    inputs = {"z": torch.randn(batch, model.latent_dim, generator=g)}
    if model.config.get("task") == "text":
        length = int(model.config.get("options", {}).get("max_length", 24))
        inputs["tokens"] = torch.randint(2, len(model.data.vocabulary) + 2, (batch, length), generator=g)
    elif model.num_classes:
        inputs["labels"] = torch.randint(model.num_classes, (batch,), generator=g)
    return inputs


def exportable(model: GeneratorPipeline | ImageToImagePipeline, direction: str | None = None) -> nn.Module:
    """The generator wrapped with its task's calling convention (see the module docstring), on the CPU, in eval."""
    # The wrapper in eval mode too: the exporter restores the wrapper's mode afterwards, recursively, and a wrapper
    # left in training mode would put the generator's batch norms back into training.
    generator = model.generator.cpu().eval()
    if isinstance(model, ImageToImagePipeline):
        if model.task == "inpaint":
            return _Inpainter(generator).eval()
        return _Translator(generator, model._reverse(direction) if model.task == "translate" else False).eval()
    if direction is not None:
        raise ValueError(f"--direction applies to image-to-image models; {model.config.get('recipe')} samples")
    from belamy.text import SentenceTransformerTokens

    if isinstance(getattr(generator, "encoder", None), SentenceTransformerTokens):
        raise ValueError(f"this model's text encoder is a sentence-transformers model ({generator.encoder.path}), "
                         f"whose tokenization runs in Python: ONNX export covers models with belamy's own encoder")
    return _Sampler(generator).eval()


def export_onnx(model: GeneratorPipeline | ImageToImagePipeline, out: str | Path, direction: str | None = None,
                check: bool = True) -> dict[str, Any]:
    """Write `out` (.onnx, with the batch axis dynamic) and, when onnxruntime is installed and check is True, run it on
    example inputs: returns {"inputs", "outputs", "max_abs_error" (None without onnxruntime)}."""
    module = exportable(model, direction)
    inputs = example_inputs(model, batch=2, direction=direction)
    output = "images" if model.data.is_image else "points"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes = {name: {0: "batch"} for name in [*inputs, output]}
    tmp = out.with_name(f".{out.name}.tmp")
    with torch.no_grad():
        torch.onnx.export(module, tuple(inputs.values()), str(tmp), input_names=list(inputs),
                          output_names=[output], dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
    tmp.replace(out)  # never a half-written file under the final name
    report: dict[str, Any] = {"inputs": {k: list(v.shape) for k, v in inputs.items()}, "outputs": [output],
                              "max_abs_error": None}
    if check:
        try:
            import onnxruntime
        except ImportError:
            return report
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        errors = []
        for batch in (2, 5):  # the traced batch and another: the batch axis is dynamic
            feed = example_inputs(model, batch=batch, direction=direction)
            with torch.no_grad():
                expected = module(*feed.values()).numpy()
            got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
            errors.append(float(abs(got - expected).max()))
        report["max_abs_error"] = max(errors)
    # Beside it: what a runtime needs to feed it (the model's config: latent size, classes, tokenizer vocabulary).
    write_json_atomic(out.with_suffix(".json"), json.loads(json.dumps(
        {"format": "belamy-onnx", **report, "model": model.config}, default=str)))
    return report


# --- a portable model folder (the layout of a Hugging Face hub model repository) ---------------------------------

PIPELINE_TAGS = {"sample": "unconditional-image-generation", "text": "text-to-image", "translate": "image-to-image",
                 "upscale": "image-to-image", "inpaint": "image-to-image"}


def export_folder(run: str | Path, out: str | Path) -> Path:
    """A model folder from a run (or another model folder): config.json, model.safetensors, a sample grid (for models
    that sample) and README.md, a model card with the training data, config and measured metrics. `belamy.load(out)`
    reads it; `belamy push` uploads it."""
    import yaml
    from safetensors.torch import save_file

    import belamy
    from belamy.pipelines.generator import MODEL_CONFIG, MODEL_WEIGHTS
    from belamy.provenance import provenance_text
    from belamy.utils.images import save_png

    run, out = Path(run), Path(out)
    if out.resolve() == run.resolve():
        raise ValueError(f"--out {out} is the run folder itself: export to another folder")
    model = belamy.load(run)
    out.mkdir(parents=True, exist_ok=True)
    config = {**model.config, "name": model.config.get("name") or run.resolve().name}
    weights = {k: v.detach().contiguous().cpu() for k, v in model.generator.state_dict().items()}
    tmp = out / f".{MODEL_WEIGHTS}.tmp"
    save_file(weights, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / MODEL_WEIGHTS)
    write_json_atomic(out / MODEL_CONFIG, config)
    task = config.get("task", "sample")
    grid = None
    if task == "sample" and model.data.is_image:
        grid = save_png(model.grid(model.sample(16, seed=0), 4), out / "samples.png", provenance_text(config, 0))
    elif task == "text":
        prompt = model.example_prompt()
        grid = save_png(model.grid(model.generate(prompt, 8, seed=0), 8), out / "samples.png",
                        provenance_text(config, 0, prompt))
    elif (run / "samples.png").is_file():  # image-to-image: the run's last preview (inputs | outputs | targets)
        grid = out / "samples.png"
        grid.write_bytes((run / "samples.png").read_bytes())
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else None
    training = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else None
    (out / "README.md").write_text(model_card(config, training, metrics, grid is not None))
    return out


def model_card(config: dict[str, Any], training: dict[str, Any] | None, metrics: dict[str, Any] | None,
               has_samples: bool) -> str:
    """README.md of a model folder: hub metadata (YAML front matter), what the model is, how it was trained and
    measured, and how to use it."""
    import yaml

    from belamy import __version__

    name, recipe, task = config.get("name", "model"), config.get("recipe", "?"), config.get("task", "sample")
    data = config.get("data", {})
    front = {"library_name": "belamy", "tags": ["gan", "belamy", recipe], "pipeline_tag": PIPELINE_TAGS.get(task)}
    usage = {"sample": f"belamy sample {name} --n 64 --out grid.png", "text": f"belamy generate {name} --prompt "
             f"\"...\" --n 8", "translate": f"belamy translate {name} --input in.png --out out.png",
             "upscale": f"belamy upscale {name} --input in.png --out out.png",
             "inpaint": f"belamy inpaint {name} --input in.png --mask mask.png --out out.png"}[task]
    lines = [f"---\n{yaml.safe_dump(front, sort_keys=False)}---", "", f"# {name}", "",
             f"A `{recipe}` GAN trained with belamy {__version__} (task: {task}).", "",
             "## Training data", "", f"- data set: `{data.get('name', '?')}`, images of shape {data.get('shape')}"
             + (f", {data.get('num_classes')} classes" if data.get("num_classes") else ""), ""]
    if training:
        lines += ["## Training configuration", "", "```yaml", yaml.safe_dump(training, sort_keys=True).strip(), "```",
                  ""]
    if metrics:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "belamy"}
        lines += ["## Measured", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in shown.items()]
        lines += [""]
    if has_samples:
        lines += ["## Samples", "", "![samples](samples.png)", ""]
    lines += ["## Use", "", "```bash", "pip install belamy", usage, "```", "", "```python", "import belamy",
              f"model = belamy.load(\"{name}\")  # this folder", "```", "",
              "Images belamy writes carry PNG metadata naming this model (and, with --watermark, an invisible "
              "watermark that `belamy detect` reads).", ""]
    return "\n".join(lines)


def push_folder(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload a model folder to a Hugging Face hub repository (needs huggingface_hub and a login); returns its URL."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ValueError(f"{folder} is not a model folder (config.json + model.safetensors): make one with "
                         f"belamy export RUN --format folder --out {folder}")
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ValueError("belamy push needs huggingface_hub: pip install huggingface_hub, then hf auth login") from None
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    return str(api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="belamy push"))
