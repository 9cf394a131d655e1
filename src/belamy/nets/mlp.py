"""Multilayer perceptrons for G and D: the architecture of Goodfellow et al. 2014, for points or flattened images.

Two options give the 2-D mixture networks of VEEGAN (Srivastava et al. 2017, appendix) and PacGAN (Lin et al. 2018,
section 5.1): batch norm after each hidden layer of G (`norm="batch"`), and maxout units in D (`maxout=5`,
Goodfellow et al. 2013, "Maxout Networks"). D may also pack samples (PacGAN), see a minibatch-stddev feature
(Karras et al. 2018) and have spectrally normalized layers (Miyato et al. 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from belamy.nets.layers import MinibatchStdDev, Projection, check_condition, one_hot, spectral_norm


class MLPGenerator(nn.Module):
    def __init__(
        self,
        shape: tuple[int, ...],  # output shape: (D,) for points, (C, H, W) for images
        latent_dim: int = 64,  # size of z
        hidden: int = 256,  # units per hidden layer
        layers: int = 3,  # hidden layers
        num_classes: int = 0,  # > 0: one-hot concatenated to z (Mirza & Osindero 2014)
        norm: str = "none",  # after each hidden linear layer: "batch" (BatchNorm1d, Ioffe & Szegedy 2015), "layer"
        # (LayerNorm, Ba et al. 2016: no dependence on the other samples of the batch) or "none"
    ) -> None:
        super().__init__()
        if norm not in ("none", "batch", "layer"):
            raise ValueError(f"norm must be 'none', 'batch' or 'layer', got {norm!r}")
        self.shape, self.latent_dim, self.num_classes = tuple(shape), latent_dim, num_classes
        dims = [latent_dim + num_classes] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            if norm == "batch":  # the bias would be cancelled by the normalization
                body += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
            elif norm == "layer":
                body += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU(inplace=True)]
            else:
                body += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        body.append(nn.Linear(dims[-1], math.prod(self.shape)))
        self.net = nn.Sequential(*body)
        self.images = len(self.shape) == 3  # images are squashed to [-1, 1]; points are left unbounded

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        check_condition(y, self.num_classes, z.shape[0])
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z.dtype)], dim=1)
        out = self.net(z).view(z.shape[0], *self.shape)
        return out.tanh() if self.images else out


class MLPDiscriminator(nn.Module):
    def __init__(
        self,
        shape: tuple[int, ...],  # input shape
        hidden: int = 256,  # units per hidden layer
        layers: int = 3,  # hidden layers
        num_classes: int = 0,  # > 0: conditional
        condition: str = "concat",  # "concat" (Mirza & Osindero 2014) or "projection" (Miyato & Koyama 2018)
        pack: int = 1,  # PacGAN (Lin et al. 2018): D judges `pack` samples at once, concatenated
        maxout: int = 1,  # > 1: each hidden unit is the max of `maxout` linear pieces (Goodfellow et al. 2013);
        # 1: LeakyReLU(0.2) units
        mbstd: int = 0,  # > 0: a minibatch-stddev feature over groups of this many (packed) inputs enters the last
        # hidden layer (Karras et al. 2018); 0: none
        sn: bool = False,  # spectral norm on every linear map (Miyato et al. 2018)
    ) -> None:
        super().__init__()
        if maxout < 1 or pack < 1 or mbstd < 0:
            raise ValueError(f"maxout and pack must be >= 1 and mbstd >= 0, got {maxout}, {pack} and {mbstd}")
        self.num_classes, self.condition, self.pack = num_classes, condition, pack
        in_dim = math.prod(shape) * pack + (num_classes * pack if num_classes and condition == "concat" else 0)
        dims = [in_dim] + [hidden] * layers
        body: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            if mbstd and i == layers - 1:  # as in ProGAN, the statistic feeds D's last layers, not only its logit
                body.append(MinibatchStdDev(mbstd))
                a += 1
            body += [Maxout(a, b, maxout, sn)] if maxout > 1 \
                else [spectral_norm(nn.Linear(a, b), sn), nn.LeakyReLU(0.2, inplace=True)]
        self.body = nn.Sequential(*body)
        self.to_logit = spectral_norm(nn.Linear(hidden, 1), sn)
        self.projection = Projection(num_classes, hidden, sn) if num_classes and condition == "projection" else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_condition(y, self.num_classes, x.shape[0])
        if x.shape[0] % self.pack:
            raise ValueError(f"batch {x.shape[0]} is not a multiple of the PacGAN pack size {self.pack}")
        h = x.flatten(1)
        if self.num_classes and self.condition == "concat":
            h = torch.cat([h, one_hot(y, self.num_classes, h.dtype)], dim=1)
        h = self.body(h.reshape(x.shape[0] // self.pack, -1))  # pack consecutive samples into one input
        logits = self.to_logit(h)
        if self.projection is not None:
            logits = logits + self.projection(h, y[:: self.pack])
        return logits.squeeze(1)  # [B / pack]


class Maxout(nn.Module):
    """A maxout layer (Goodfellow et al. 2013): `out_features` units, each the max over `pieces` linear maps."""

    def __init__(
        self,
        in_features: int,  # input size
        out_features: int,  # units
        pieces: int,  # linear pieces per unit (5 in the VEEGAN and PacGAN discriminators)
        sn: bool = False,  # spectral norm on the stacked linear map of all pieces
    ) -> None:
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = spectral_norm(nn.Linear(in_features, out_features * pieces), sn)

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear(x).view(x.shape[0], self.out_features, self.pieces)  # [B, units, pieces]
        return h.amax(dim=2)
