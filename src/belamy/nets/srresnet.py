"""SRGAN's generator (SRResNet) and discriminator (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network", figure 4), adapted for short runs and any image size.

Generator: 9x9 conv + PReLU; `n_blocks` residual blocks (conv3-PReLU-conv3, plus the input); conv3 plus a global skip
from the first layer; log2(scale) upsampling blocks (conv3 to 4x the channels, pixel shuffle x2, Shi et al. 2016,
PReLU); a 9x9 conv to the image. Two changes from the paper:
- no batch norm: EDSR (Lim et al. 2017) and ESRGAN (Wang et al. 2018) found it harmful for super-resolution (it
  removes the range of the features and adds artifacts when train and test statistics differ). As ESRGAN, the last
  conv of each residual block starts at 0.1x its default weights, to keep the deep un-normalized stack stable.
- `residual=True` (default): the net predicts a correction added to the bicubic upsampling of the input, instead of
  the whole image through tanh. At initialization (its last conv is zero) G outputs the bicubic upsampling, and it
  only has to learn the missing detail, which trains much faster in short CPU runs (as VDSR, Kim et al. 2016). The
  sum is clamped to [-1, 1] with a straight-through gradient: a pixel pushed out of range still gets gradients to
  bring it back. `residual=False` is the paper's form, tanh(net(x)).
The sub-pixel convs start with ICNR (Aitken et al. 2017): each output pixel's r x r sub-pixels share weights, so
the upsampling begins as nearest-neighbour, without checkerboard artifacts.

Discriminator: conv3 + LeakyReLU(0.2), then `n_blocks` pairs (conv3 stride 1 doubling the channels, conv3 stride 2),
each conv followed by LeakyReLU(0.2) (the paper: also batch norm); then a dense layer of 16 * width units,
LeakyReLU(0.2) and one logit. Deviation: the paper flattens a fixed 6x6 (96 px crops) map into its dense layer; here
a global average pool comes first, so D takes any size (and the patch size at training need not be fixed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.nets.layers import spectral_norm
from belamy.nets.unet import NORMS, check_image, norm2d


class ResidualBlock(nn.Module):
    """x + conv3(PReLU(conv3(x))): SRGAN's block without its two batch norms (as EDSR)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        with torch.no_grad():  # ESRGAN's smaller initialization of the residual branch
            self.conv2.weight.mul_(0.1)
            self.conv2.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class UpsampleBlock(nn.Module):
    """[B, C, H, W] -> conv3 -> [B, 4C, H, W] -> pixel shuffle -> [B, C, 2H, 2W] -> PReLU (Shi et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4 * channels, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU()
        with torch.no_grad():  # ICNR (Aitken et al. 2017): pixel shuffle sends channel c * 4 + k to sub-pixel k of c
            sub = nn.Conv2d(channels, channels, 3, 1, 1)  # a default-initialized conv, copied to the 4 sub-pixels
            self.conv.weight.copy_(sub.weight.repeat_interleave(4, dim=0))
            self.conv.bias.copy_(sub.bias.repeat_interleave(4, dim=0))

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))


def _clamp_straight_through(x: Tensor) -> Tensor:
    """Clamp to [-1, 1] in the forward pass, identity gradient in the backward pass. (x - x.detach()) is exactly 0,
    so the values are exactly the clamped ones."""
    return x.clamp(-1.0, 1.0).detach() + (x - x.detach())


class SRResNetGenerator(nn.Module):
    def __init__(
        self,
        channels: int,  # image channels, input and output
        scale: int,  # upscaling factor: 2 or 4 (one or two x2 pixel-shuffle blocks)
        width: int = 64,  # channels of every hidden layer
        n_blocks: int = 16,  # residual blocks (SRGAN: 16)
        residual: bool = True,  # True: bicubic upsampling + predicted correction, clamped; False: tanh (the paper)
    ) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.channels, self.scale, self.residual, self.latent_dim = channels, scale, residual, 0
        self.size_multiple = 1
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU())  # [B, width, h, w]
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(n_blocks)])
        self.after_blocks = nn.Conv2d(width, width, 3, 1, 1)  # then + head's output: the global skip
        self.upsample = nn.Sequential(*[UpsampleBlock(width) for _ in range(int(math.log2(scale)))])
        self.to_image = nn.Conv2d(width, channels, 9, 1, 4)  # [B, width, sh, sw] -> [B, channels, sh, sw]
        if residual:  # start as the bicubic upsampling
            nn.init.zeros_(self.to_image.weight)
            nn.init.zeros_(self.to_image.bias)

    def forward(self, z: Tensor, condition: Tensor) -> Tensor:
        """z: ignored (may be [B, 0]); condition: low-resolution [B, C, h, w] in [-1, 1] -> [B, C, scale h,
        scale w] in [-1, 1]."""
        check_image(condition, self.channels, 1, "SRResNetGenerator")
        features = self.head(condition)  # [B, width, h, w]
        x = self.after_blocks(self.blocks(features)) + features
        x = self.to_image(self.upsample(x))  # [B, C, scale h, scale w]
        if not self.residual:
            return torch.tanh(x)
        base = F.interpolate(condition, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        return _clamp_straight_through(base + x)


class SRDiscriminator(nn.Module):
    def __init__(
        self,
        channels: int,  # image channels
        width: int = 64,  # channels of the first conv; doubled by each block after the first (SRGAN: 64 ... 512)
        n_blocks: int = 4,  # (conv3 stride 1, conv3 stride 2) pairs, each halving the size (SRGAN: 4)
        norm: str = "none",  # after every conv but the first: "none", or "instance" (the paper: batch norm)
        sn: bool = False,  # spectral norm on every layer (Miyato et al. 2018): recommended here without a norm
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: one of {', '.join(NORMS)}")
        self.channels = channels
        bias = norm == "none"
        # [B, channels, H, W] -> [B, width, H, W], no norm on the input layer
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(channels, width, 3, 1, 1), sn), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(n_blocks):  # [B, ch, h, w] -> [B, out, ceil(h/2), ceil(w/2)]
            out = width * 2**i
            if i > 0:
                layers += [spectral_norm(nn.Conv2d(ch, out, 3, 1, 1, bias=bias), sn), norm2d(norm, out),
                           nn.LeakyReLU(0.2)]
            layers += [spectral_norm(nn.Conv2d(out, out, 3, 2, 1, bias=bias), sn), norm2d(norm, out),
                       nn.LeakyReLU(0.2)]
            ch = out
        self.body = nn.Sequential(*layers)
        # The paper's Dense(1024) - LeakyReLU - Dense(1), on the average-pooled features [B, ch].
        self.head = nn.Sequential(spectral_norm(nn.Linear(ch, 16 * width), sn), nn.LeakyReLU(0.2),
                                  spectral_norm(nn.Linear(16 * width, 1), sn))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> logits [B] (the paper's sigmoid is in the loss)."""
        check_image(x, self.channels, 1, "SRDiscriminator")
        features = self.body(x).mean(dim=(2, 3))  # global average pool -> [B, ch]
        return self.head(features).squeeze(1)
