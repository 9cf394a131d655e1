"""ResNet generator and discriminator of SNGAN (Miyato et al. 2018, appendix B.4; after Gulrajani et al. 2017).

G: z -> linear -> base x base -> k up-blocks -> BN, ReLU, conv3x3, tanh.
D: an optimized first down-block, down-blocks to base x base, one more block, ReLU, global sum pooling, linear
(plus the projection term when conditional). Spectral norm on every layer of D.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from belamy.nets.layers import Norm2d, Projection, check_condition, spectral_norm, split_resolution


class GeneratorBlock(nn.Module):
    """BN-ReLU-up-conv3-BN-ReLU-conv3, plus an upsampled 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = Norm2d(in_ch, num_classes), Norm2d(out_ch, num_classes)
        # No biases: every output of a block reaches a batch norm (the next block's, or the generator's last),
        # which removes a per-channel constant, so a bias here would get a zero gradient and drift on rounding noise.
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-(avgpool), plus a 1x1 shortcut; `first` is the "optimized block" without pre-ReLU."""

    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, 1, 1))
        self.shortcut = spectral_norm(nn.Conv2d(in_ch, out_ch, 1)) if (in_ch != out_ch or down) else None

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.shortcut is not None:
            # The optimized block pools before its 1x1 conv, the others after (as in the SNGAN reference code).
            s = self.shortcut(F.avg_pool2d(x, 2)) if self.first else self.shortcut(x)
            if self.down and not self.first:
                s = F.avg_pool2d(s, 2)
        return h + s


class ResNetGenerator(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int],  # output (C, H, W)
        latent_dim: int = 128,  # size of z
        width: int = 128,  # channels of every block (256 in SNGAN's CIFAR-10 model)
        num_classes: int = 0,  # > 0: conditional batch norm in every block (Miyato & Koyama 2018)
    ) -> None:
        super().__init__()
        channels, resolution, _ = shape
        self.latent_dim, self.num_classes, self.width = latent_dim, num_classes, width
        self.base, levels = split_resolution(resolution)
        self.stem = nn.Linear(latent_dim, self.base * self.base * width, bias=False)  # batch norm follows
        self.blocks = nn.ModuleList(GeneratorBlock(width, width, num_classes) for _ in range(levels))
        self.out_norm = nn.BatchNorm2d(width)
        self.to_image = nn.Conv2d(width, channels, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        check_condition(y, self.num_classes, z.shape[0])
        x = self.stem(z).view(z.shape[0], self.width, self.base, self.base)
        for block in self.blocks:
            x = block(x, y)
        return self.to_image(F.relu(self.out_norm(x))).tanh()  # [B, C, H, W]


class ResNetDiscriminator(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int],  # input (C, H, W)
        width: int = 128,  # channels of every block
        num_classes: int = 0,  # > 0: projection discriminator (Miyato & Koyama 2018)
    ) -> None:
        super().__init__()
        channels, resolution, _ = shape
        self.num_classes = num_classes
        _, levels = split_resolution(resolution)
        blocks = [DiscriminatorBlock(channels, width, down=True, first=True)]
        blocks += [DiscriminatorBlock(width, width, down=True) for _ in range(levels - 1)]
        blocks += [DiscriminatorBlock(width, width, down=False)]
        self.blocks = nn.Sequential(*blocks)
        self.to_logit = spectral_norm(nn.Linear(width, 1))
        self.projection = Projection(num_classes, width, sn=True) if num_classes else None
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.parametrizations.weight.original)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_condition(y, self.num_classes, x.shape[0])
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling -> [B, width]
        logits = self.to_logit(h)
        if self.projection is not None:
            logits = logits + self.projection(h, y)
        return logits.squeeze(1)
