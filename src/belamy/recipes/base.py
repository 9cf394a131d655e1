"""What a recipe is: its networks, its default hyperparameters, and its phases (a D step and a G step).

A recipe never sees optimizers, devices, checkpoints or logs: the engine (belamy.train) owns those and runs the
phases. Most recipes only choose networks; the standard adversarial D and G steps live here, once.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.config import ConfigError, _coerce
from belamy.data.base import DataInfo
from belamy.losses import AdversarialLoss
from belamy.registry import Registry


@dataclass(frozen=True)
class RecipeDefaults:
    """Hyperparameters a recipe's paper prescribes; a run's config overrides any of them."""

    loss: str = "nonsaturating"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Radford et al. 2016: beta1 = 0.5 stabilizes GAN training
    d_steps: int = 1
    batch_size: int = 64
    lr_decay: str = "none"  # "linear": to zero at the last step


@dataclass
class Batch:
    """What one phase gets. Every random draw was made by the engine's seeded generator (resumable runs)."""

    real: Tensor  # real data, float in [-1, 1] for images: [B, C, H, W] or [B, D]
    labels: Tensor | None  # class of each real sample [B], None for unconditional recipes
    z: Tensor  # latents for this phase [B, latent_dim]
    fake_labels: Tensor | None  # classes to generate [B]
    generator: torch.Generator  # for any further randomness a phase needs (e.g. WGAN-GP's interpolation weights)
    keep_fake: bool = False  # the D step keeps G's graph in `fake`, so that the G step reuses it
    fake: Tensor | None = None  # G(z, fake_labels), set by a D step with keep_fake
    global_size: int = 0  # under DDP: the global batch this process has the rows `rows` of (0: this batch is all)
    rows: slice | None = None
    inputs: Tensor | None = None  # image-to-image data: the input image of each real one (or of domain A)
    text: Tensor | None = None  # captioned data: one caption of each real image, as token ids [B, L]
    index: Tensor | None = None  # in-memory data: the row of each real image in the data set [B]
    caption: Tensor | None = None  # in-memory captioned data: which of its image's captions `text` is [B]
    progress: float = 0.0  # the fraction of the run done when the batch was drawn (step / steps), for schedules
    made: dict[str, Tensor] = dataclasses.field(default_factory=dict)  # what a D step derived from this batch
    # (a condition, a mask) that the G step must reuse: see ImageToImage.condition

    def rand(self, *shape: int) -> Tensor:
        """U[0, 1) draws of shape [B, *shape], one per sample, from the run's generator (resumable). Drawn for the
        global batch and sliced to this process's rows, so a result does not depend on the number of processes."""
        n = self.global_size or self.real.shape[0]
        u = torch.rand((n, *shape), generator=self.generator, device=self.generator.device)
        u = u if self.rows is None else u[self.rows]
        return u[:self.real.shape[0]].to(self.real.device)  # fewer rows when unreadable files were skipped

    def randn(self, *shape: int) -> Tensor:
        """N(0, 1) draws of shape [B, *shape], made like `rand`'s (global batch, then this process's rows)."""
        n = self.global_size or self.real.shape[0]
        x = torch.randn((n, *shape), generator=self.generator, device=self.generator.device)
        x = x if self.rows is None else x[self.rows]
        return x[:self.real.shape[0]].to(self.real.device)


class Recipe(nn.Module):
    """Base class: a GAN method. Subclasses set `name`, `Options` and `defaults` and build G and D.

    Phases (d_step, g_step) call self.G and self.D, never their other methods: under DDP the engine swaps in the
    wrappers, which expose only the forward. Every parameter that requires a gradient must get one in each phase
    that trains its network (no find_unused_parameters): freeze what is not trained, build no unread head."""

    name: ClassVar[str]
    Options: ClassVar[type]  # a dataclass of the recipe's own options (architecture widths, penalties, ...)
    defaults: ClassVar[RecipeDefaults] = RecipeDefaults()
    needs_images: ClassVar[bool] = False  # convolutional recipes refuse 2-D point data
    # What the trained generator is for, which picks its pipeline (belamy.load): "sample" (noise -> data),
    # "translate" (image -> image), "upscale" (low -> high resolution) or "inpaint" (image + mask -> image).
    task: ClassVar[str] = "sample"
    pairing: ClassVar[tuple[str, ...]] = ()  # image-to-image data it needs ("paired", "unpaired"); (): plain data
    uses_text: ClassVar[bool] = False  # conditioned on captions: the engine feeds Batch.text (see caption_tokens)
    # Options added after runs were made without them, each with the value that builds and trains what those runs
    # did: a resumed run whose saved config lacks one takes this value, not today's default.
    introduced: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: Any, data: DataInfo, loss: AdversarialLoss) -> None:
        super().__init__()
        self.check_data(options, data)
        self.options, self.data, self.loss = options, data, loss
        self.G = self.build_generator(options, data)
        self.D = self.build_discriminator(options, data)

    # --- networks (classmethods so that a pipeline can rebuild G alone from config.json) --------------------------

    @classmethod
    def build_generator(cls, options: Any, data: DataInfo) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def build_discriminator(cls, options: Any, data: DataInfo) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def conditional(cls, options: Any, data: DataInfo) -> bool:
        """Whether G and D take class labels. Default: unconditional, labels are ignored."""
        return False

    @property
    def num_classes(self) -> int:
        return self.data.num_classes if self.conditional(self.options, self.data) else 0

    @classmethod
    def check_data(cls, options: Any, data: DataInfo) -> None:
        """Refuse data the recipe cannot train on, with a message that says why."""
        if cls.needs_images and not data.is_image:
            raise ValueError(f"recipe {cls.name!r} is convolutional and needs image data; {data.name!r} holds "
                             f"points of shape {data.shape} (use --model gan for 2-D data)")
        if cls.pairing and data.pairing not in cls.pairing:
            raise ValueError(f"recipe {cls.name!r} needs {' or '.join(cls.pairing)} image-to-image data (inputs "
                             f"with their images, e.g. edges2mnist, or a folder in a layout of belamy.data.paired); "
                             f"{data.name!r} holds {data.pairing or 'plain'} images")

    @classmethod
    def parse_options(cls, values: dict[str, Any]) -> Any:
        """A dict from YAML or `--option key=value` -> the recipe's Options, validated field by field."""
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"recipe {cls.name!r} has no option(s) {', '.join(unknown)}; "
                              f"its options are: {', '.join(sorted(fields)) or 'none'}")
        hints = typing.get_type_hints(cls.Options)
        return cls.Options(**{k: _coerce(v, hints[k], f"option {k!r} of recipe {cls.name!r}")
                              for k, v in values.items()})

    def prepare(self, source: Any) -> None:
        """Once, before training starts (and before the EMA copy of G): anything the recipe needs from the data
        itself, such as a text encoder pretrained on its captions. Default: nothing."""

    def caption_tokens(self, captions: list[list[str]]) -> tuple[Tensor, Tensor]:
        """Text recipes: every image's captions as token ids [N, K, L] and their number [N]."""
        raise NotImplementedError

    # --- phases -------------------------------------------------------------------------------------------------

    def d_step(self, batch: Batch) -> dict[str, Tensor]:
        """D learns to tell real from fake: loss["loss"] is minimized over D's parameters."""
        with torch.set_grad_enabled(batch.keep_fake):
            fake = self.G(batch.z, batch.fake_labels)
        if batch.keep_fake:  # the G step reuses this forward pass, as the pytorch/examples DCGAN loop does
            batch.fake = fake
        fake = fake.detach()  # this phase updates D only
        real_logits = self.D(self.d_input(batch.real, batch), batch.labels)
        fake_logits = self.D(self.d_input(fake, batch), batch.fake_labels)
        adversarial = self.loss.d(real_logits.float(), fake_logits.float())
        terms = self.d_regularizers(batch, fake)
        return {
            "loss": adversarial + sum(terms.values()),  # logged as loss_d
            "d_real": self.loss.d_output(real_logits.detach().float()).mean(),
            "d_fake": self.loss.d_output(fake_logits.detach().float()).mean(),
            **terms,
        }

    def d_input(self, x: Tensor, batch: Batch) -> Tensor:
        """What D sees of real or fake samples `x` in the standard D and G steps: `x` itself, unless a recipe
        blurs it (instance noise, see the `gan` recipe)."""
        return x

    def d_regularizers(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        """Weighted extra terms of D's loss (a gradient penalty, say), each logged under its name."""
        return {}

    def g_step(self, batch: Batch) -> dict[str, Tensor]:
        """G learns to fool D: loss["loss"] is minimized over G's parameters."""
        fake = batch.fake if batch.fake is not None else self.G(batch.z, batch.fake_labels)
        adversarial = self.loss.g(self.D(self.d_input(fake, batch), batch.fake_labels).float())
        return {"loss": adversarial}  # logged as loss_g

    # --- what a run shows --------------------------------------------------------------------------------------

    @torch.no_grad()
    def preview(self, G: nn.Module, batch: Batch) -> tuple[Tensor, int | None]:
        """What samples/*.png shows for a fixed batch, and the grid's row length (None: square). Default: G's
        samples of the fixed latents (and classes, a row per class)."""
        chunks = range(0, batch.z.shape[0], 256)  # bounded memory for the 2,000-point scatter plots
        out = torch.cat([G(batch.z[i:i + 256], None if batch.fake_labels is None else batch.fake_labels[i:i + 256])
                         .float() for i in chunks])
        return out, (self.num_classes or None)


RECIPES: Registry[type[Recipe]] = Registry("model")


class ImageToImage(Recipe):
    """Conditional image-to-image GANs (pix2pix, SRGAN, inpainting): G maps a condition image to an image, D judges
    what it sees of (condition, image), and G also minimizes reconstruction terms against the real target.

    Subclasses say how a batch becomes (condition, target), what D sees, and which reconstruction terms G adds; the
    D step and G step below are shared. The condition is made once per batch (it may hold random draws, such as
    inpainting masks) and reused by the G step.
    """

    needs_images = True
    task = "translate"
    adversarial_weight: float = 1.0  # of G's adversarial term against its reconstruction terms
    d_loss_scale: float = 1.0  # pix2pix halves D's objective "to slow down the rate at which D learns"

    # --- what a subclass says ---------------------------------------------------------------------------------

    def make_condition(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(G's input, the image G should make) for this batch."""
        raise NotImplementedError

    def discriminate(self, condition: Tensor, image: Tensor) -> Tensor:
        """D's logits for an image made from `condition`. Default: D judges the pair, stacked along the channels
        (a conditional D, as pix2pix's)."""
        return self.D(torch.cat([condition, image], dim=1))

    def reconstruction(self, fake: Tensor, target: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Weighted non-adversarial terms of G's loss, each logged under its name."""
        return {}

    def finish(self, fake: Tensor, condition: Tensor, target: Tensor) -> Tensor:
        """G's raw output -> the image it delivers (inpainting keeps the known pixels). Default: unchanged."""
        return fake

    def show_condition(self, condition: Tensor, target: Tensor) -> Tensor:
        """The condition as an image of the target's shape, for preview grids."""
        if condition.shape[1] != target.shape[1]:
            condition = condition.mean(1, keepdim=True).expand(-1, target.shape[1], -1, -1)
        if condition.shape[2:] != target.shape[2:]:  # low resolution: shown with its pixels enlarged
            condition = F.interpolate(condition, size=target.shape[2:], mode="nearest")
        return condition

    # --- phases ---------------------------------------------------------------------------------------------------

    def condition(self, batch: Batch) -> tuple[Tensor, Tensor]:
        if "condition" not in batch.made:
            batch.made["condition"], batch.made["target"] = self.make_condition(batch)
        return batch.made["condition"], batch.made["target"]

    def d_adversarial(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return self.loss.d(real_logits, fake_logits)

    def g_adversarial(self, fake_logits: Tensor, condition: Tensor, target: Tensor) -> Tensor:
        return self.loss.g(fake_logits)

    def d_step(self, batch: Batch) -> dict[str, Tensor]:
        condition, target = self.condition(batch)
        with torch.set_grad_enabled(batch.keep_fake):
            fake = self.G(batch.z, condition)
        if batch.keep_fake:
            batch.fake = fake
        fake = self.finish(fake.detach(), condition, target)
        real_logits = self.discriminate(condition, target).float()
        fake_logits = self.discriminate(condition, fake).float()
        return {
            "loss": self.d_loss_scale * self.d_adversarial(real_logits, fake_logits),
            "d_real": self.loss.d_output(real_logits.detach()).mean(),
            "d_fake": self.loss.d_output(fake_logits.detach()).mean(),
        }

    def g_step(self, batch: Batch) -> dict[str, Tensor]:
        condition, target = self.condition(batch)
        raw = batch.fake if batch.fake is not None else self.G(batch.z, condition)
        fake = self.finish(raw, condition, target)
        adversarial = self.g_adversarial(self.discriminate(condition, fake).float(), condition, target)
        terms = self.reconstruction(raw.float(), target.float(), condition)
        return {"loss": self.adversarial_weight * adversarial + sum(terms.values()), "g_adversarial": adversarial,
                **terms}

    @torch.no_grad()
    def preview(self, G: nn.Module, batch: Batch) -> tuple[Tensor, int | None]:
        """Rows of (condition, G's image, the real image), four triples to a row."""
        condition, target = self.condition(batch)
        fake = self.finish(G(batch.z, condition), condition, target).float()
        triples = torch.stack([self.show_condition(condition, target).float(), fake, target.float()], dim=1)
        return triples.flatten(0, 1), 12
