"""`pix2pix` (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

G: a U-Net from the input image to the output image; D: a PatchGAN that judges (input, output) pairs patch by patch.
G minimizes the conditional GAN loss plus lambda * L1(G(x), y) with lambda = 100 (eq. 4): L1 gets the low
frequencies right, the patch discriminator the high ones. D's objective is halved (section 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from belamy.data.base import DataInfo
from belamy.nets import PatchDiscriminator, UNetGenerator
from belamy.recipes.base import RECIPES, Batch, ImageToImage, RecipeDefaults


@dataclass
class Pix2PixOptions:
    direction: str = "AtoB"  # "AtoB": the data's inputs -> its images; "BtoA": the reverse
    l1_weight: float = 100.0  # lambda of eq. 4
    width: int = 64  # U-Net channels at the outermost level (ngf)
    depth: int = 0  # U-Net levels; 0: down to 1x1 (log2 of the resolution)
    dropout: float = 0.5  # in the 3 innermost decoder levels (pix2pix's noise); 0: none
    d_width: int = 64  # PatchGAN channels (ndf)
    d_layers: int = 0  # PatchGAN stride-2 layers; 0: 3 (70x70 patches) from 128 px, 2 (34x34) from 32 px, else 1


def patch_layers(requested: int, resolution: int) -> int:
    """The PatchGAN depth: as asked, or the paper's 70x70 patches where the images are large enough for them."""
    return requested or (3 if resolution >= 128 else 2 if resolution >= 32 else 1)


@RECIPES.register("pix2pix")
class Pix2Pix(ImageToImage):
    """Paired image-to-image translation: U-Net G, conditional PatchGAN D, L1 weight 100 (Isola et al. 2017)."""

    name = "pix2pix"
    Options = Pix2PixOptions
    pairing = ("paired",)
    # Adam(2e-4, beta1 = 0.5) as the paper; batch size 1 there, larger here for CPU throughput (instance norm keeps
    # every output independent of the batch either way)
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), batch_size=16)
    d_loss_scale = 0.5

    @staticmethod
    def _sides(options: Pix2PixOptions, data: DataInfo) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(input shape, output shape) in the translation direction."""
        if options.direction not in ("AtoB", "BtoA"):
            raise ValueError(f"option direction must be AtoB or BtoA, got {options.direction!r}")
        a, b = data.input_shape or data.shape, data.shape
        return (a, b) if options.direction == "AtoB" else (b, a)

    @classmethod
    def build_generator(cls, options: Pix2PixOptions, data: DataInfo) -> nn.Module:
        source, target = cls._sides(options, data)
        return UNetGenerator(source[0], target[0], target[1], options.width, depth=options.depth or None,
                             dropout=options.dropout)

    @classmethod
    def build_discriminator(cls, options: Pix2PixOptions, data: DataInfo) -> nn.Module:
        source, target = cls._sides(options, data)
        return PatchDiscriminator(source[0] + target[0], options.d_width, patch_layers(options.d_layers, target[1]))

    def make_condition(self, batch: Batch) -> tuple[Tensor, Tensor]:
        assert batch.inputs is not None, "pix2pix needs paired data"
        return (batch.inputs, batch.real) if self.options.direction == "AtoB" else (batch.real, batch.inputs)

    def reconstruction(self, fake: Tensor, target: Tensor, condition: Tensor) -> dict[str, Tensor]:
        return {"l1": self.options.l1_weight * (fake - target).abs().mean()}
