"""The U-Net generator of pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", section 3.2.1 and appendix 6.1.1; after Ronneberger et al. 2015).

Encoder: 4x4 stride-2 convolutions, each halving the size, LeakyReLU(0.2) before each but the first, instance norm
after each but the outermost and the innermost. Decoder: ReLU, 4x4 stride-2 transposed convolution, instance norm;
the decoder layer of each level sees its inner level's output concatenated with the encoder's features of the same
size (the skip connections), so fine detail need not squeeze through the bottleneck. The outermost decoder layer
maps to the image with tanh. Dropout (0.5) follows the 3 innermost decoder layers, pix2pix's only noise source: the
latent z of the generator convention is ignored (the paper found that G learned to ignore a Gaussian z).

Instance norm, not batch norm: pix2pix trains at batch size 1, where batch norm *is* instance norm; at larger
batches instance norm keeps each output independent of the rest of the batch (Ulyanov et al. 2016).

Also here, shared by patchgan.py and translator.py: `norm2d`, `pix2pix_init` and `check_image` (candidates for
layers.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NORMS = ("instance", "none")


def norm2d(kind: str, channels: int) -> nn.Module:
    """"instance": InstanceNorm2d with a learned scale and shift (per sample, so independent of the batch); "none"."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: one of {', '.join(NORMS)}")


def pix2pix_init(net: nn.Module, std: float = 0.02) -> None:
    """Conv weights ~ N(0, std), biases 0, norm scales 1 and shifts 0: the init of the pix2pix/CycleGAN code."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_image(x: Tensor, channels: int, multiple: int, net: str) -> None:
    """x must be [B, channels, H, W] with H and W multiples of `multiple`; the error names the size."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{net} expects images [B, {channels}, H, W], got {tuple(x.shape)}")
    h, w = x.shape[2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{net} cannot take a {h}x{w} input: height and width must be multiples of {multiple}")


def unet_depth(resolution: int, depth: int | None) -> int:
    """Number of levels: `depth`, or log2(resolution) (down to 1x1) when None. The resolution must be divisible by
    2**depth: 256 -> 8, 28 -> error unless depth <= 2."""
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    deepest = (resolution & -resolution).bit_length() - 1  # the largest d with resolution divisible by 2**d
    if depth is None:
        if resolution != 2**deepest:
            raise ValueError(f"resolution {resolution} is not a power of two, so a U-Net cannot halve it down to "
                             f"1x1 (valid sizes: 2, 4, ..., 16, 32, 64, 128, 256, ...); give depth <= {deepest}, "
                             f"for which {resolution} is divisible by 2**depth")
        return deepest
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if depth > deepest:
        raise ValueError(f"resolution {resolution} is not divisible by 2**depth = {2**depth}: a U-Net of depth "
                         f"{depth} takes sizes that are multiples of {2**depth}, and {resolution} allows depth "
                         f"1..{deepest}")
    return depth


class UNetGenerator(nn.Module):
    def __init__(
        self,
        in_channels: int,  # channels of the condition image (C_in)
        out_channels: int,  # channels of the output image
        resolution: int,  # side of the training images; fixes the default depth
        width: int = 64,  # channels of the outermost encoder layer (ngf); doubled at each inner level
        max_width: int = 512,  # ... up to this (pix2pix: 512 = 8 * ngf)
        depth: int | None = None,  # levels, each halving the size; None: log2(resolution), down to 1x1 (8 at 256 px)
        dropout: float = 0.5,  # after the 3 innermost decoder layers (pix2pix); 0: none (a deterministic G)
        norm: str = "instance",  # "instance" or "none"
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: one of {', '.join(NORMS)}")
        self.in_channels, self.out_channels, self.latent_dim = in_channels, out_channels, 0
        self.depth = unet_depth(resolution, depth)
        self.size_multiple = 2**self.depth  # inputs must have sides divisible by this
        # chs[i]: channels of the encoder's output at level i, of size H / 2**(i + 1).
        chs = [min(width * 2**i, max_width) for i in range(self.depth)]
        innermost = self.depth - 1

        self.down = nn.ModuleList()  # level i: [B, chs[i-1], H/2**i, .] -> [B, chs[i], H/2**(i+1), .]
        for i in range(self.depth):
            # No norm on the outermost layer (as DCGAN's D input layer) nor the innermost, whose 1x1 output would be
            # zeroed by instance norm.
            kind = norm if 0 < i < innermost else "none"
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(in_channels if i == 0 else chs[i - 1], chs[i], 4, 2, 1, bias=kind == "none"),
                       norm2d(kind, chs[i])]
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()  # level i: [B, 2 * chs[i] (chs[i] innermost), H/2**(i+1), .] -> [B, ., H/2**i, .]
        for i in range(self.depth):
            c_in = chs[i] if i == innermost else 2 * chs[i]  # inner output + skip, except at the bottleneck
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, chs[i - 1], 4, 2, 1, bias=norm == "none"),
                          norm2d(norm, chs[i - 1])]
                # The paper's decoder (appendix 6.1.1: CD512-CD1024-CD1024-C1024-...) puts dropout on its first 3
                # layers, the innermost; the reference code puts it one level further out.
                if dropout > 0 and i >= innermost - 2:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        pix2pix_init(self)

    def forward(self, z: Tensor, condition: Tensor) -> Tensor:
        """z: ignored (may be [B, 0]); condition [B, C_in, H, W] in [-1, 1] -> [B, C_out, H, W] in [-1, 1]."""
        check_image(condition, self.in_channels, self.size_multiple, f"UNetGenerator(depth={self.depth})")
        skips = []
        x = condition
        for down in self.down:
            x = down(x)
            skips.append(x)  # skips[i]: [B, chs[i], H/2**(i+1), W/2**(i+1)]
        x = skips.pop()  # the bottleneck
        for i in reversed(range(self.depth)):
            x = self.up[i](x)  # [B, chs[i-1] (out_channels at i == 0), H/2**i, W/2**i]
            if i > 0:
                x = torch.cat([x, skips[i - 1]], dim=1)  # the skip connection from the same size
        return x
