"""`gan`: the original GAN of Goodfellow et al. 2014 with multilayer perceptrons, for 2-D points or small images.

The defaults are tuned for the 2-D mode-collapse benchmarks (ring8, grid25): the networks of the VEEGAN
(Srivastava et al. 2017) and PacGAN (Lin et al. 2018) experiments, narrowed so that a CPU runs ~10x more steps:
- G: z of 2 dimensions, 4 hidden ReLU layers with batch norm (VEEGAN/PacGAN: 400 units; here 128);
- D: 3 hidden layers of maxout units with 5 pieces (VEEGAN/PacGAN: 200 units; here 64). Maxout matters: with the
  same budget, a LeakyReLU D of 1000 units leaves ~90% of ring8's samples between the modes;
- one sample per D input. PacGAN2 (`pack=2`) keeps all modes too but costs grid25 its quality in a short run: a
  D of packed pairs has 625 combinations of 25 sharp modes to resolve and learns only their envelope, so samples
  fill the square uniformly (2.8% within 3 std of a mode, chance level; unpacked: 33%).
The learning rate is higher than the papers' 1e-4 (Adam 2e-3, beta1 = 0.5, Radford et al. 2016) because it is meant
to be decayed to zero (`lr_decay="linear"`, with batch 256, the recipe's defaults): the decay, not a long run, is what
tightens the modes. Measured with benchmarks/mode_collapse.py (one CPU thread, 1,800 steps, ~25 s, seeds 0-4):
- ring8: 8/8 modes, 87 +- 3% high-quality samples (within 3 std = 0.03 of a mode); pack=2: 8/8, 83 +- 6%;
- grid25: 22.6/25 modes, 33 +- 14% high quality; pack=2: 19/25, 3%.
PacGAN2 reports 95.6% on ring8 and 91.3% on grid25 after 400,000 steps of batch 100. What is missing here is
sharpness, not modes: the off-mode samples lie on thin filaments between neighbouring modes, most from latents near
z = 0, where G's sectors of the latent plane meet; sharper borders need larger gains in G, and with batch norm in
every hidden layer those grow only through the norms' scales and the output layer, slowly. More steps help: with
`mbstd=True` and 18,000 steps (seeds 0-4), ring8 7.8/8 modes, 97.8% high quality; grid25 23.4/25, 92.4% (README).
What keeps every grid mode is R1 (`r1=0.1`, Mescheder et al. 2018), a penalty on D's slope at real samples, which
makes the game locally convergent instead of circling its equilibrium. Without it a mode that G feeds only 1-3 of
2,500 samples is one step from gone, and grid25 loses inner modes late in a run as well as early; with it, the
modes stay evenly fed (the least-fed holds 46-77): mbstd + r1, 18,000 steps, seeds 0-4, grid25 25/25 on every
seed, 93.3% high quality. Gamma has units of squared distance: ring8, a quarter of grid25's spread, takes 0.1 / 16.
With D twice as wide as well (`d_width=128`, 1.8x slower per step), both sets pass PacGAN2's published figures on
every seed: ring8 8/8, 96.8% high quality; grid25 25/25, 95.2% (18,000 steps, seeds 0-4, README).
`g_norm="layer"` gives ring8 96% in 1,800 steps because layer norm after the first layer sees only the direction of
z (a circle of latents suits a ring), and fails grid25 for that reason.
The options against collapse: `mbstd` (Karras et al. 2018), `pack` (PacGAN), `sn` with `--loss hinge` (Miyato et al.
2018), `gp_weight` with `--loss wasserstein` (Gulrajani et al. 2017), `r1` (above) and `noise` (instance noise,
Sonderby et al. 2017); the benchmark compares them. Noise 0.3 raised grid25's modes from 22.6 to 23.8 of 25 after
6,000 steps (seeds 0-4, with mbstd) at the cost of sharpness (81% -> 72% high quality), and did not keep them through
18,000 (README).
Keep the EMA generator (ema_decay 0.999): with the decay it changes nothing, without it (constant learning rate)
it is what keeps ring8 at 83% high quality, where the raw G falls to 27%.
For flattened images, raise latent_dim (e.g. 64) and the widths.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from belamy.data.base import DataInfo
from belamy.losses import gradient_penalty, r1_penalty
from belamy.nets.mlp import MLPDiscriminator, MLPGenerator
from belamy.recipes.base import RECIPES, Batch, Recipe, RecipeDefaults


@dataclass
class GANOptions:
    latent_dim: int = 2  # z dimension; 2 as in VEEGAN/PacGAN's 2-D experiments
    g_width: int = 128  # units per hidden layer of G
    g_layers: int = 4  # hidden layers of G
    g_norm: str = "batch"  # after each hidden layer of G: "batch" (as in VEEGAN/PacGAN), "layer" or "none"
    d_width: int = 64  # units per hidden layer of D
    d_layers: int = 3  # hidden layers of D
    maxout: int = 5  # pieces per maxout unit of D (Goodfellow et al. 2013; 5 in VEEGAN/PacGAN); 1: LeakyReLU(0.2)
    pack: int = 1  # PacGAN packing (Lin et al. 2018): D sees `pack` samples at once (2: PacGAN2)
    mbstd: bool = False  # minibatch standard deviation (Karras et al. 2018): D sees how varied groups of 4 inputs are
    sn: bool = False  # spectral norm on D's layers (Miyato et al. 2018); with --loss hinge, an SNGAN-like D
    gp_weight: float = 0.0  # > 0: WGAN-GP's gradient penalty (Gulrajani et al. 2017; 10 with --loss wasserstein)
    r1: float = 0.0  # > 0: R1's gamma (Mescheder et al. 2018, eq. 9): gamma / 2 * E ||grad D(x)||^2 on real samples
    noise: float = 0.0  # instance noise (Sonderby et al. 2017; Arjovsky & Bottou 2017): D sees real and fake samples
    # plus Gaussian noise of this std, in units of the real batch's std, which blurs the modes into each other so
    # that D's gradient can move G's mass between them; it decays linearly to 0 at `noise_until` of the run
    noise_until: float = 0.5  # the fraction of the run after which D sees clean samples


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
        if options.gp_weight < 0 or options.r1 < 0:
            raise ValueError(f"options 'gp_weight' and 'r1' must be >= 0, got {options.gp_weight} and {options.r1}")
        if options.noise < 0 or not 0 < options.noise_until <= 1:
            raise ValueError(f"option 'noise' must be >= 0 and 'noise_until' in (0, 1], got {options.noise} and "
                             f"{options.noise_until}")

    @classmethod
    def build_generator(cls, options: GANOptions, data: DataInfo) -> nn.Module:
        return MLPGenerator(data.shape, options.latent_dim, options.g_width, options.g_layers, norm=options.g_norm)

    @classmethod
    def build_discriminator(cls, options: GANOptions, data: DataInfo) -> nn.Module:
        return MLPDiscriminator(data.shape, options.d_width, options.d_layers, pack=options.pack,
                                maxout=options.maxout, mbstd=4 if options.mbstd else 0, sn=options.sn)

    def d_input(self, x: Tensor, batch: Batch) -> Tensor:
        std = self.options.noise * max(0.0, 1.0 - batch.progress / self.options.noise_until)  # in data stds
        if std == 0:
            return x
        # The data's scale (ring8 0.7, grid25 2.9), from this process's rows: under DDP each rank's estimate
        # differs by a few percent; the noise draws themselves are the global batch's, as everywhere.
        spread = batch.real.detach().flatten(1).std(dim=0).mean()
        return x + std * spread * batch.randn(*x.shape[1:])

    def d_regularizers(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        terms = {}
        if self.options.r1:  # a second look at the real batch, as a leaf that D's gradient is taken for
            real = self.d_input(batch.real.detach(), batch).requires_grad_(True)
            terms["r1"] = self.options.r1 / 2 * r1_penalty(self.D(real, None), real)
        if self.options.gp_weight:
            terms["gp"] = self._gradient_penalty(batch, fake)
        return terms

    def _gradient_penalty(self, batch: Batch, fake: Tensor) -> Tensor:
        # The penalty is on the gradient of D's input, which is a pack of samples: interpolate each sample, then
        # take the norm over each pack [B / pack, pack * D].
        real, b, k = batch.real, batch.real.shape[0], self.options.pack
        alpha = batch.rand(1).expand(b, real[0].numel()).reshape(b // k, -1)
        penalty = gradient_penalty(lambda x: self.D(x.view(real.shape)), real.reshape(b // k, -1),
                                   fake.reshape(b // k, -1), alpha)
        return self.options.gp_weight * penalty
