"""`gan`: the original GAN of Goodfellow et al. 2014 with multilayer perceptrons, for 2-D points or small images.

The defaults are tuned for the 2-D mode-collapse benchmarks (ring8, grid25): the networks of the VEEGAN
(Srivastava et al. 2017) and PacGAN (Lin et al. 2018) experiments, narrowed so that a CPU runs ~10x more steps:
- G: z of 2 dimensions, 4 hidden ReLU layers with batch norm (VEEGAN/PacGAN: 400 units; here 128);
- D: 3 hidden layers of maxout units with 5 pieces (VEEGAN/PacGAN: 200 units; here 64). Maxout matters: with the
  same budget, a LeakyReLU D of 1000 units leaves ~90% of ring8's samples between the modes;
- PacGAN2: D judges pairs of samples, which keeps all 8 ring modes (unpacked, runs lose 1-2 of them).
The learning rate is higher than the papers' 1e-4 (Adam 2e-3, beta1 = 0.5, Radford et al. 2016) because it is meant
to be decayed to zero (`lr_decay="linear"`, with batch 256, the recipe's defaults): the decay, not a long run, is what
tightens the modes. Measured on one CPU thread, batch 256, 1,800 steps (~20 s), seeds 0-2:
- ring8: 8/8 modes, 81-90% high-quality samples (within 3 std of a mode), with the EMA generator or without;
- grid25: 16-21/25 modes but only 2-3% high quality: packed pairs of 25 modes are too much for this D in 1,800
  steps; pack=1 (1,500 steps) gives 21-25/25 modes and 28-34% high quality there, but loses 1 of ring8's modes in
  2 runs of 3.
Keep the EMA generator (ema_decay 0.999): with the decay it changes nothing, without it (constant learning rate)
it is what keeps ring8 at 83% high quality, where the raw G falls to 27%.
For flattened images, raise latent_dim (e.g. 64) and the widths.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from belamy.data.base import DataInfo
from belamy.nets.mlp import MLPDiscriminator, MLPGenerator
from belamy.recipes.base import RECIPES, Recipe, RecipeDefaults


@dataclass
class GANOptions:
    latent_dim: int = 2  # z dimension; 2 as in VEEGAN/PacGAN's 2-D experiments
    g_width: int = 128  # units per hidden layer of G
    g_layers: int = 4  # hidden layers of G
    g_norm: str = "batch"  # after each hidden layer of G: "batch" (as in VEEGAN/PacGAN), "layer" or "none"
    d_width: int = 64  # units per hidden layer of D
    d_layers: int = 3  # hidden layers of D
    maxout: int = 5  # pieces per maxout unit of D (Goodfellow et al. 2013; 5 in VEEGAN/PacGAN); 1: LeakyReLU(0.2)
    pack: int = 2  # PacGAN packing (Lin et al. 2018): D sees `pack` samples at once; 2 fights mode collapse


@RECIPES.register("gan")
class GAN(Recipe):
    """Goodfellow et al. 2014: MLP generator and discriminator (for ring8/grid25 or flattened images)."""

    name = "gan"
    Options = GANOptions
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=2e-3, lr_d=2e-3, betas=(0.5, 0.999), batch_size=256,
                              lr_decay="linear")

    @classmethod
    def check_data(cls, options: GANOptions, data: DataInfo) -> None:
        super().check_data(options, data)
        if options.g_norm not in ("batch", "layer", "none"):
            raise ValueError(f"option 'g_norm' must be batch, layer or none, got {options.g_norm!r}")
        if options.maxout < 1 or options.pack < 1:
            raise ValueError(f"options 'maxout' and 'pack' must be >= 1, got {options.maxout} and {options.pack}")

    @classmethod
    def build_generator(cls, options: GANOptions, data: DataInfo) -> nn.Module:
        return MLPGenerator(data.shape, options.latent_dim, options.g_width, options.g_layers, norm=options.g_norm)

    @classmethod
    def build_discriminator(cls, options: GANOptions, data: DataInfo) -> nn.Module:
        return MLPDiscriminator(data.shape, options.d_width, options.d_layers, pack=options.pack,
                                maxout=options.maxout)
