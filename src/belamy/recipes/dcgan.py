"""`dcgan`: Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional GANs"."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from belamy.data.base import DataInfo
from belamy.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from belamy.recipes.base import RECIPES, Recipe, RecipeDefaults


@dataclass
class DCGANOptions:
    latent_dim: int = 100
    g_width: int = 64  # ngf: channels of G's last hidden layer
    d_width: int = 64  # ndf: channels of D's first layer
    pack: int = 1  # PacGAN packing (Lin et al. 2018): D sees `pack` images at once, stacked along the channels
    mbstd: bool = False  # minibatch standard deviation (Karras et al. 2018): D sees how varied groups of 4 inputs are
    sn: bool = False  # spectral norm on D's layers and no batch norm (Miyato et al. 2018's standard CNN; with --loss
    # hinge, an SNGAN-like D)


@RECIPES.register("dcgan")
class DCGAN(Recipe):
    """Radford et al. 2016: all-convolutional G and D with batch norm; Adam(2e-4, beta1 = 0.5)."""

    name = "dcgan"
    Options = DCGANOptions
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))
    needs_images = True

    @classmethod
    def check_data(cls, options: DCGANOptions, data: DataInfo) -> None:
        super().check_data(options, data)
        if options.pack < 1:
            raise ValueError(f"option 'pack' must be >= 1, got {options.pack}")

    @classmethod
    def build_generator(cls, options: DCGANOptions, data: DataInfo) -> nn.Module:
        return DCGANGenerator(data.shape, options.latent_dim, options.g_width)

    @classmethod
    def build_discriminator(cls, options: DCGANOptions, data: DataInfo) -> nn.Module:
        return DCGANDiscriminator(data.shape, options.d_width, norm="none" if options.sn else "batch", sn=options.sn,
                                  pack=options.pack, mbstd=4 if options.mbstd else 0)

