"""`sngan`: Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks"."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from belamy.data.base import DataInfo
from belamy.nets.resnet import ResNetDiscriminator, ResNetGenerator
from belamy.recipes.base import RECIPES, Recipe, RecipeDefaults


@dataclass
class SNGANOptions:
    latent_dim: int = 128
    g_width: int = 128  # channels of G's residual blocks (256 for CIFAR-10 in the paper)
    d_width: int = 128  # channels of D's residual blocks


@RECIPES.register("sngan")
class SNGAN(Recipe):
    """Miyato et al. 2018: ResNet G and D, spectral norm in D, hinge loss, n_dis = 5, Adam(2e-4, 0, 0.9)."""

    name = "sngan"
    Options = SNGANOptions
    defaults = RecipeDefaults(loss="hinge", lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9), d_steps=5)
    needs_images = True

    @classmethod
    def build_generator(cls, options: SNGANOptions, data: DataInfo) -> nn.Module:
        return ResNetGenerator(data.shape, options.latent_dim, options.g_width)

    @classmethod
    def build_discriminator(cls, options: SNGANOptions, data: DataInfo) -> nn.Module:
        return ResNetDiscriminator(data.shape, options.d_width)
