"""`TextToImagePipeline`: a trained text-to-image generator: `generate("a small white circle ...", n, seed)`, and
walks between two prompts (GAN-INT, Reed et al. 2016)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from belamy.pipelines.generator import GeneratorPipeline
from belamy.text import Tokenizer
from belamy.utils.images import to_pil


class PromptError(ValueError):
    """An empty prompt, or one with no word the model knows."""


class TextToImagePipeline(GeneratorPipeline):
    def __init__(self, generator: nn.Module, config: dict[str, Any], device: str | torch.device = "cpu") -> None:
        super().__init__(generator, config, device)
        self.tokenizer = Tokenizer(self.data.vocabulary)
        self.resolution = self.data.shape[1]
        self.max_length = int(config.get("options", {}).get("max_length", 24))

    # --- prompts ---------------------------------------------------------------------------------------------------

    def check_prompt(self, prompt: str, allow_unknown: bool = False) -> list[str]:
        """The warnings a prompt earns (words the model never saw, with the nearest known ones; truncation); raises
        PromptError for an empty prompt, or when no known word remains (unless allow_unknown)."""
        if not isinstance(prompt, str) or not self.tokenizer.words(prompt):
            raise PromptError("the prompt is empty: describe the image, e.g. "
                              "'a small white circle on a green background'")
        notes = []
        unknown = self.tokenizer.unknown_words(prompt)
        if unknown:
            hints = "; ".join(f"{w!r} (nearest: {', '.join(self.tokenizer.nearest_words(w)) or 'none'})"
                              for w in dict.fromkeys(unknown))
            known = len(self.tokenizer.words(prompt)) - len(unknown)
            message = f"words this model never saw: {hints}"
            if known == 0 and not allow_unknown:
                raise PromptError(f"{message}; no known word remains (--allow-unknown generates anyway)")
            notes.append(message)
        if len(self.tokenizer.words(prompt)) > self.max_length:
            notes.append(f"the prompt has {len(self.tokenizer.words(prompt))} words; the model reads the first "
                         f"{self.max_length}")
        return notes

    def example_prompt(self) -> str:
        """A prompt made of words the model knows (for model cards and the web page's placeholder)."""
        words = self.tokenizer.vocabulary
        colours = [w for w in ("red", "blue", "green", "white", "yellow") if w in words]
        shapes = [w for w in ("circle", "square", "triangle", "star") if w in words]
        if colours and shapes:
            return f"a {colours[0]} {shapes[0]} on a {colours[-1]} background"
        return " ".join(list(words)[:4])

    def tokens(self, prompts: list[str], allow_unknown: bool = False) -> torch.Tensor:
        for prompt in dict.fromkeys(prompts):
            for note in self.check_prompt(prompt, allow_unknown):
                warnings.warn(note, stacklevel=3)
        return self.tokenizer.encode_batch(prompts, self.max_length)

    # --- generating --------------------------------------------------------------------------------------------

    def generate(self, prompt: str | list[str], n: int = 8, seed: int = 0, allow_unknown: bool = False,
                 batch_size: int = 64) -> torch.Tensor:
        """n images [n, C, H, W] in [-1, 1] for one prompt (or one image per prompt of a list, n ignored)."""
        prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise PromptError("no prompts given")
        tokens = self.tokens(prompts, allow_unknown)
        return self.from_latents(self.latents(len(prompts), seed), tokens, batch_size)

    def conditions(self, n: int, class_label: int | str | None = None, prompt: str | None = None,
                   allow_unknown: bool = False) -> torch.Tensor:
        """Token ids [n, max_length] of a prompt (checked as in generate; right-padded to the model's max length)."""
        if class_label is not None:
            raise PromptError("a text-to-image model draws from a prompt, not a class")
        if prompt is None:
            raise PromptError("a text-to-image model needs a prompt")
        tokens = self.tokens([prompt], allow_unknown)
        return F.pad(tokens, (0, self.max_length - tokens.shape[1])).expand(n, -1)

    def generate_images(self, prompt: str | list[str], n: int = 8, seed: int = 0,
                        allow_unknown: bool = False) -> list[Image.Image]:
        return to_pil(self.generate(prompt, n, seed, allow_unknown))

    @torch.no_grad()
    def interpolate_prompts(self, start: str, end: str, steps: int = 8, seed: int = 0,
                            allow_unknown: bool = False) -> torch.Tensor:
        """GAN-INT: one latent, sentence embeddings on the line from `start`'s to `end`'s -> [steps, C, H, W]."""
        from belamy.recipes.text2img import interpolate_embeddings

        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        tokens = self.tokens([start, end], allow_unknown).to(self.device)
        a, b = self.generator.encode(tokens)
        z = self.latents(1, seed).to(self.device).expand(steps, -1)
        images, _ = self.generator.synthesis(z, interpolate_embeddings(a, b, steps))
        return images.float().cpu()

    def sample(self, n: int = 16, seed: int = 0, class_label: int | str | None = None,
               batch_size: int = 64) -> torch.Tensor:
        raise PromptError("a text-to-image model draws from a prompt: use generate('a small white circle ...') "
                          "(belamy generate RUN --prompt ...)")

    def interpolate(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise PromptError("a text-to-image model walks between prompts: use interpolate_prompts(start, end) "
                          "(belamy generate RUN --prompt START --to END)")
