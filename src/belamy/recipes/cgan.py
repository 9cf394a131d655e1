"""`cgan`: class-conditional GANs.

Two ways to condition, selectable with the `condition` option:
- "concat" (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets"): the one-hot label is concatenated to
  G's input and to D's input.
- "projection" (Miyato & Koyama 2018, "cGANs with Projection Discriminator"): D adds <embed(y), phi(x)> to its
  logit, and G uses class-conditional batch norm.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from belamy.data.base import DataInfo
from belamy.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, ResNetDiscriminator, \
    ResNetGenerator
from belamy.recipes.base import RECIPES, Recipe, RecipeDefaults


@dataclass
class CGANOptions:
    condition: str = "projection"  # how D is conditioned: "concat" or "projection"
    g_condition: str = "concat"  # how a DCGAN G is conditioned: "concat" (one-hot to z) or "cbn" (class batch norm)
    arch: str = "dcgan"  # "dcgan", "resnet" (SNGAN's, spectral norm in D) or "mlp"
    latent_dim: int = 100
    g_width: int = 64  # DCGAN/ResNet channels, or MLP hidden units
    d_width: int = 64


@RECIPES.register("cgan")
class CGAN(Recipe):
    """Class-conditional GAN: concatenation (Mirza & Osindero 2014) or projection (Miyato & Koyama 2018)."""

    name = "cgan"
    Options = CGANOptions
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))

    @classmethod
    def check_data(cls, options: CGANOptions, data: DataInfo) -> None:
        if data.num_classes < 2:
            raise ValueError(f"recipe 'cgan' needs labeled data; {data.name!r} has no classes "
                             f"(a folder needs one subfolder per class)")
        if options.condition not in ("concat", "projection"):
            raise ValueError(f"option 'condition' must be concat or projection, got {options.condition!r}")
        if options.g_condition not in ("concat", "cbn"):
            raise ValueError(f"option 'g_condition' must be concat or cbn, got {options.g_condition!r}")
        if options.arch not in ("dcgan", "resnet", "mlp"):
            raise ValueError(f"option 'arch' must be dcgan, resnet or mlp, got {options.arch!r}")
        if options.arch == "resnet" and options.condition == "concat":
            raise ValueError("arch 'resnet' conditions by projection only: use condition=projection")
        if options.arch != "mlp" and not data.is_image:
            raise ValueError(f"arch {options.arch!r} needs images; use arch=mlp for {data.name!r}")

    @classmethod
    def conditional(cls, options: CGANOptions, data: DataInfo) -> bool:
        return True

    @classmethod
    def build_generator(cls, options: CGANOptions, data: DataInfo) -> nn.Module:
        k = data.num_classes
        if options.arch == "mlp":
            return MLPGenerator(data.shape, options.latent_dim, options.g_width, num_classes=k)
        if options.arch == "resnet":
            return ResNetGenerator(data.shape, options.latent_dim, options.g_width, num_classes=k)
        return DCGANGenerator(data.shape, options.latent_dim, options.g_width, num_classes=k,
                              condition=options.g_condition)

    @classmethod
    def build_discriminator(cls, options: CGANOptions, data: DataInfo) -> nn.Module:
        k = data.num_classes
        if options.arch == "mlp":
            return MLPDiscriminator(data.shape, options.d_width, num_classes=k, condition=options.condition)
        if options.arch == "resnet":
            return ResNetDiscriminator(data.shape, options.d_width, num_classes=k)
        return DCGANDiscriminator(data.shape, options.d_width, num_classes=k, condition=options.condition)
