"""`wgan-gp`: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from belamy.data.base import DataInfo
from belamy.losses import gradient_penalty
from belamy.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from belamy.recipes.base import RECIPES, Batch, Recipe, RecipeDefaults


@dataclass
class WGANGPOptions:
    latent_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    gp_weight: float = 10.0  # lambda in eq. 3


@RECIPES.register("wgan-gp")
class WGANGP(Recipe):
    """Gulrajani et al. 2017: Wasserstein critic with a gradient penalty, n_critic = 5, Adam(1e-4, 0, 0.9)."""

    name = "wgan-gp"
    Options = WGANGPOptions
    defaults = RecipeDefaults(loss="wasserstein", lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), d_steps=5)
    needs_images = True

    @classmethod
    def build_generator(cls, options: WGANGPOptions, data: DataInfo) -> nn.Module:
        return DCGANGenerator(data.shape, options.latent_dim, options.g_width)

    @classmethod
    def build_discriminator(cls, options: WGANGPOptions, data: DataInfo) -> nn.Module:
        # No batch norm in the critic: the penalty is per sample and batch statistics would couple the samples
        # (section 4); layer normalization as the paper recommends.
        return DCGANDiscriminator(data.shape, options.d_width, norm="layer")

    def d_regularizers(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        alpha = batch.rand(*(1,) * (batch.real.dim() - 1))
        penalty = gradient_penalty(lambda x: self.D(x, batch.labels), batch.real, fake, alpha)
        return {"gp": self.options.gp_weight * penalty}
