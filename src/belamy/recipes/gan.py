"""`gan`: the original GAN of Goodfellow et al. 2014 with multilayer perceptrons, for 2-D points or small images."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from belamy.data.base import DataInfo
from belamy.nets.mlp import MLPDiscriminator, MLPGenerator
from belamy.recipes.base import RECIPES, Recipe, RecipeDefaults


@dataclass
class GANOptions:
    latent_dim: int = 16
    g_width: int = 256  # units per hidden layer of G
    g_layers: int = 3  # hidden layers of G
    g_norm: str = "none"  # "batch" or "none"
    d_width: int = 256  # units per hidden layer of D
    d_layers: int = 3  # hidden layers of D
    maxout: int = 1  # pieces per maxout unit of D; 1: LeakyReLU units
    pack: int = 1  # PacGAN packing (Lin et al. 2018): D sees `pack` samples at once; 2 fights mode collapse


@RECIPES.register("gan")
class GAN(Recipe):
    """Goodfellow et al. 2014: MLP generator and discriminator (for ring8/grid25 or flattened images)."""

    name = "gan"
    Options = GANOptions
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999))

    @classmethod
    def build_generator(cls, options: GANOptions, data: DataInfo) -> nn.Module:
        return MLPGenerator(data.shape, options.latent_dim, options.g_width, options.g_layers, norm=options.g_norm)

    @classmethod
    def build_discriminator(cls, options: GANOptions, data: DataInfo) -> nn.Module:
        return MLPDiscriminator(data.shape, options.d_width, options.d_layers, pack=options.pack,
                                maxout=options.maxout)
