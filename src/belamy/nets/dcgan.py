"""DCGAN generator and discriminator (Radford et al. 2016), for any resolution base * 2**k (see split_resolution).

The paper's guidelines: strided (transposed) convolutions instead of pooling, batch norm in both nets except G's
output and D's input layers, ReLU in G with tanh output, LeakyReLU(0.2) in D. Options of D against mode collapse:
PacGAN packing (Lin et al. 2018) and a minibatch-stddev channel (Karras et al. 2018).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from belamy.nets.layers import MinibatchStdDev, Norm2d, Projection, check_condition, label_planes, one_hot, \
    spectral_norm, split_resolution


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int],  # output (C, H, W), H == W
        latent_dim: int = 100,  # size of z
        width: int = 64,  # channels of the last hidden layer; doubled at each coarser level (ngf in the paper code)
        num_classes: int = 0,  # > 0: class-conditional
        condition: str = "concat",  # "concat": one-hot concatenated to z (Mirza & Osindero 2014); "cbn": class BN
    ) -> None:
        super().__init__()
        channels, resolution, _ = shape
        self.latent_dim, self.num_classes, self.condition = latent_dim, num_classes, condition
        base, levels = split_resolution(resolution)
        in_dim = latent_dim + (num_classes if num_classes and condition == "concat" else 0)
        norm_classes = num_classes if condition == "cbn" else 0
        ch = width * 2 ** (levels - 1)
        # z [B, in_dim, 1, 1] -> [B, ch, base, base]: the projection is a transposed conv with a base x base kernel.
        self.stem = nn.ConvTranspose2d(in_dim, ch, base, 1, 0, bias=False)
        self.stem_norm = Norm2d(ch, norm_classes)
        self.ups = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(levels - 1):  # each doubles the resolution and halves the channels
            self.ups.append(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False))
            self.norms.append(Norm2d(ch // 2, norm_classes))
            ch //= 2
        self.to_image = nn.ConvTranspose2d(ch, channels, 4, 2, 1)  # last doubling, to pixels
        self.act = nn.ReLU(inplace=True)
        _dcgan_init(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        check_condition(y, self.num_classes, z.shape[0])
        if self.num_classes and self.condition == "concat":
            z = torch.cat([z, one_hot(y, self.num_classes, z.dtype)], dim=1)
        x = self.act(self.stem_norm(self.stem(z[:, :, None, None]), y))
        for up, norm in zip(self.ups, self.norms):
            x = self.act(norm(up(x), y))
        return torch.tanh(self.to_image(x))  # [B, C, H, W] in [-1, 1]


class DCGANDiscriminator(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int],  # input (C, H, W)
        width: int = 64,  # channels of the first layer (ndf); doubled at each coarser level
        num_classes: int = 0,  # > 0: class-conditional
        condition: str = "projection",  # "concat": one-hot planes as extra input channels; "projection"
        norm: str = "batch",  # "batch" (DCGAN), "layer" (WGAN-GP: no batch statistics in a critic), "none"
        sn: bool = False,  # spectral norm on every layer (Miyato et al. 2018)
        pack: int = 1,  # PacGAN (Lin et al. 2018): D judges `pack` images at once, stacked along the channels
        mbstd: int = 0,  # > 0: a minibatch-stddev channel over groups of this many (packed) inputs enters the last
        # conv layer (Karras et al. 2018); 0: none
    ) -> None:
        super().__init__()
        if pack < 1 or mbstd < 0:
            raise ValueError(f"pack must be >= 1 and mbstd >= 0, got {pack} and {mbstd}")
        channels, resolution, _ = shape
        self.num_classes, self.condition, self.pack = num_classes, condition, pack
        base, levels = split_resolution(resolution)
        in_ch = (channels + (num_classes if num_classes and condition == "concat" else 0)) * pack
        layers: list[nn.Module] = []
        ch, out_ch = in_ch, width
        for level in range(levels):  # each halves the resolution: the first without norm, the others with it
            if mbstd and level == levels - 1:  # as in ProGAN, before the last (coarsest) conv layer
                layers.append(MinibatchStdDev(mbstd))
                ch += 1
            if level == 0:
                layers += [spectral_norm(nn.Conv2d(ch, out_ch, 4, 2, 1), sn), nn.LeakyReLU(0.2, True)]
            else:
                layers += [spectral_norm(nn.Conv2d(ch, out_ch, 4, 2, 1, bias=norm == "none"), sn),
                           _norm_layer(norm, out_ch), nn.LeakyReLU(0.2, True)]
            ch, out_ch = out_ch, out_ch * 2
        self.body = nn.Sequential(*layers)  # [B / pack, ch, base, base]
        self.features = ch * base * base
        # The paper's last layer, a conv with a base x base kernel to one logit, is this linear map of the features.
        self.to_logit = spectral_norm(nn.Linear(self.features, 1), sn)
        self.projection = Projection(num_classes, self.features, sn) if num_classes and condition == "projection" \
            else None
        _dcgan_init(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_condition(y, self.num_classes, x.shape[0])
        b, _, h, w = x.shape
        if b % self.pack:
            raise ValueError(f"batch {b} is not a multiple of the PacGAN pack size {self.pack}")
        if self.num_classes and self.condition == "concat":
            x = torch.cat([x, label_planes(y, self.num_classes, x)], dim=1)
        x = x.reshape(b // self.pack, -1, h, w)  # pack consecutive images into one input of pack * C channels
        features = self.body(x).flatten(1)
        logits = self.to_logit(features)
        if self.projection is not None:
            logits = logits + self.projection(features, y[:: self.pack])
        return logits.squeeze(1)  # [B / pack]


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # normalizes each sample over (C, H, W): layer norm for conv features
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: batch, layer or none")


def _dcgan_init(net: nn.Module) -> None:
    """Weights ~ N(0, 0.02), norm gains ~ N(1, 0.02), as the paper prescribes (section 4)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
