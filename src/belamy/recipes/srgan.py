"""`srgan`: single-image super-resolution (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network"), with ESRGAN's options (Wang et al. 2018).

The low-resolution input is made on the fly from each training image by antialiased bicubic downsampling, so any
image set serves. G: SRResNet (residual blocks, pixel-shuffle x2 upsampling), here without batch norm as EDSR and
ESRGAN found better, predicting a correction to the bicubic upsampling; D: SRGAN's strided conv net on the
high-resolution image alone. G minimizes a pixel loss plus 1e-3 x the adversarial loss (the paper's weight); options:
the relativistic average discriminator of ESRGAN, and a feature (perceptual) loss in the space of any belamy feature
extractor given with its weights file (the role VGG plays in the papers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from belamy.data.base import DataInfo
from belamy.losses import d_relativistic_average, g_relativistic_average
from belamy.nets import SRDiscriminator, SRResNetGenerator
from belamy.recipes.base import RECIPES, Batch, ImageToImage, RecipeDefaults


@dataclass
class SRGANOptions:
    scale: int = 4  # upscaling factor: 2 or 4
    width: int = 64  # SRResNet channels
    blocks: int = 16  # SRResNet residual blocks
    d_width: int = 64
    d_blocks: int = 0  # discriminator's stride-2 blocks; 0: 4 (the paper), fewer for images under 64 px
    d_sn: bool = True  # spectral norm in D (Miyato et al. 2018) in place of the paper's batch norm: without either,
    # D's input gradients grow until G's updates blow up
    pixel_loss: str = "l1"  # "l1" (ESRGAN) or "mse" (SRGAN)
    pixel_weight: float = 1.0
    adversarial_weight: float = 1e-3  # SRGAN's weight of the adversarial term
    relativistic: bool = False  # ESRGAN's relativistic average D (Jolicoeur-Martineau 2019)
    perceptual: str = ""  # a feature extractor (belamy eval --extractor names, e.g. inception) for a feature loss
    perceptual_weights: str = ""  # its weights file (required for inception)
    perceptual_weight: float = 1.0


def downsample(images: Tensor, scale: int) -> Tensor:
    """High -> low resolution: antialiased bicubic, as the low-resolution images of SR benchmarks are made."""
    h, w = images.shape[2:]
    return F.interpolate(images, size=(h // scale, w // scale), mode="bicubic", antialias=True,
                         align_corners=False).clamp(-1, 1)


@RECIPES.register("srgan")
class SRGAN(ImageToImage):
    """Super-resolution x2 or x4: SRResNet G, SRGAN D, pixel + adversarial (+ feature) loss (Ledig et al. 2017)."""

    name = "srgan"
    Options = SRGANOptions
    task = "upscale"
    defaults = RecipeDefaults(loss="nonsaturating", lr_g=1e-4, lr_d=1e-4, betas=(0.9, 0.999), batch_size=16)

    def __init__(self, options: SRGANOptions, data: DataInfo, loss) -> None:
        super().__init__(options, data, loss)
        self.adversarial_weight = options.adversarial_weight
        self._features = self._feature_network(options) if options.perceptual else None

    @classmethod
    def check_data(cls, options: SRGANOptions, data: DataInfo) -> None:
        super().check_data(options, data)
        if options.scale not in (2, 4):
            raise ValueError(f"option scale must be 2 or 4, got {options.scale}")
        if data.shape[1] % options.scale:
            raise ValueError(f"{data.name}: resolution {data.shape[1]} is not divisible by scale {options.scale}")
        if options.pixel_loss not in ("l1", "mse"):
            raise ValueError(f"option pixel_loss must be l1 or mse, got {options.pixel_loss!r}")

    @classmethod
    def build_generator(cls, options: SRGANOptions, data: DataInfo) -> nn.Module:
        return SRResNetGenerator(data.shape[0], options.scale, options.width, options.blocks)

    @classmethod
    def build_discriminator(cls, options: SRGANOptions, data: DataInfo) -> nn.Module:
        blocks = options.d_blocks or max(1, min(4, data.shape[1].bit_length() - 4))  # 4 from 64 px: 32 -> 2
        return SRDiscriminator(data.shape[0], options.d_width, blocks, sn=options.d_sn)

    @staticmethod
    def _feature_network(options: SRGANOptions):
        """The frozen feature network of the perceptual loss (not part of the model: never saved with it)."""
        from belamy.metrics.extractors import load_extractor

        return load_extractor(options.perceptual, weights=options.perceptual_weights or None)

    def _features_of(self, images: Tensor) -> Tensor:
        """Differentiable features of images in [-1, 1], with the extractor's own input conventions (channels,
        size, range); the extractor's __call__ is for measuring and runs without gradients."""
        from belamy.metrics.extractors.base import match_channels

        e = self._features
        e.net.to(images.device)
        x = match_channels((images + 1) * 127.5, e.input_channels)  # the 0..255 scale FeatureExtractor.prepare uses
        if e.input_size is not None and x.shape[-1] != e.input_size:
            x = F.interpolate(x, size=(e.input_size, e.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > e.input_size)
        lo, hi = e.input_range
        out = e.net(x * ((hi - lo) / 255.0) + lo)
        return (out[0] if isinstance(out, tuple) else out).float()

    def make_condition(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return downsample(batch.real, self.options.scale), batch.real

    def discriminate(self, condition: Tensor, image: Tensor) -> Tensor:
        return self.D(image)  # SRGAN's D judges the high-resolution image alone

    def d_adversarial(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if self.options.relativistic:
            return d_relativistic_average(real_logits, fake_logits)
        return self.loss.d(real_logits, fake_logits)

    def g_adversarial(self, fake_logits: Tensor, condition: Tensor, target: Tensor) -> Tensor:
        if self.options.relativistic:  # needs D's view of the real images too (ESRGAN eq. 3)
            real_logits = self.discriminate(condition, target).float().detach()
            return g_relativistic_average(real_logits, fake_logits)
        return self.loss.g(fake_logits)

    def reconstruction(self, fake: Tensor, target: Tensor, condition: Tensor) -> dict[str, Tensor]:
        o = self.options
        pixel = (fake - target).abs().mean() if o.pixel_loss == "l1" else (fake - target).square().mean()
        terms = {"pixel": o.pixel_weight * pixel}
        if self._features is not None:
            real_features = self._features_of(target).detach()
            terms["perceptual"] = o.perceptual_weight * (self._features_of(fake) - real_features).square().mean()
        return terms
