"""The ResNet generator of CycleGAN (Zhu et al. 2017, appendix 7.2), after Johnson et al. 2016 ("Perceptual Losses
for Real-Time Style Transfer and Super-Resolution", supplementary material).

c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3 in the paper's notation: a reflection-padded 7x7 conv,
`n_downsampling` 3x3 stride-2 convs doubling the channels, residual blocks at 1/4 size (reflection padding, so that
the borders are not darkened by zero padding), as many 3x3 stride-2 transposed convs back up, a reflection-padded
7x7 conv to the image and tanh. Instance norm and ReLU after every conv but the last. The paper uses 9 blocks at
256 px and 6 at 128 px or less.
"""

from __future__ import annotations

from torch import Tensor, nn

from belamy.nets.unet import NORMS, check_image, norm2d, pix2pix_init


class ResidualBlock(nn.Module):
    """x + (pad-conv3-norm-ReLU-pad-conv3-norm)(x): Johnson et al.'s block, as CycleGAN's code has it."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=norm == "none"), norm2d(norm, channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=norm == "none"), norm2d(norm, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetTranslator(nn.Module):
    def __init__(
        self,
        in_channels: int,  # channels of the input image
        out_channels: int,  # channels of the output image
        width: int = 64,  # channels of the first conv (ngf); doubled by each downsampling
        n_downsampling: int = 2,  # stride-2 convs down (and transposed convs up); inputs: multiples of 2**this
        n_blocks: int = 9,  # residual blocks: 9 at 256 px, 6 at <= 128 px in the paper
        norm: str = "instance",  # "instance" or "none"
        upsample: str = "transpose",  # "transpose": 3x3 stride-2 transposed convs (the paper); "nearest": nearest
        # upsampling then a 3x3 conv, free of checkerboard artifacts (Odena et al. 2016, "Deconvolution and
        # Checkerboard Artifacts")
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: one of {', '.join(NORMS)}")
        if upsample not in ("transpose", "nearest"):
            raise ValueError(f"unknown upsample {upsample!r}: transpose or nearest")
        if n_downsampling < 0:
            raise ValueError(f"n_downsampling must be >= 0, got {n_downsampling}")
        self.in_channels, self.out_channels, self.latent_dim = in_channels, out_channels, 0
        self.n_downsampling = n_downsampling
        self.size_multiple = 2**n_downsampling  # inputs must have sides divisible by this
        bias = norm == "none"  # a bias before a norm with a learned shift is redundant
        # [B, in_channels, H, W] -> [B, width, H, W]
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias),
                                   norm2d(norm, width), nn.ReLU()]
        ch = width
        for _ in range(n_downsampling):  # [B, ch, h, w] -> [B, 2 ch, h/2, w/2]
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1, bias=bias), norm2d(norm, 2 * ch), nn.ReLU()]
            ch *= 2
        layers += [ResidualBlock(ch, norm) for _ in range(n_blocks)]  # [B, ch, H/2**n, W/2**n]
        for _ in range(n_downsampling):  # [B, ch, h, w] -> [B, ch/2, 2h, 2w]
            if upsample == "transpose":
                layers.append(nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=bias))
            else:
                layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, ch // 2, 3, 1, 1, bias=bias)]
            layers += [norm2d(norm, ch // 2), nn.ReLU()]
            ch //= 2
        # [B, width, H, W] -> [B, out_channels, H, W] in [-1, 1]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        pix2pix_init(self)

    def forward(self, z: Tensor, condition: Tensor) -> Tensor:
        """z: ignored (may be [B, 0]); condition [B, C_in, H, W] in [-1, 1] -> [B, C_out, H, W] in [-1, 1]."""
        name = f"ResNetTranslator(n_downsampling={self.n_downsampling})"
        check_image(condition, self.in_channels, self.size_multiple, name)
        h, w = condition.shape[2:]
        smallest = max(4, 2 * self.size_multiple)  # reflection padding by p needs sides > p: 3 at full size, 1 inside
        if min(h, w) < smallest:
            raise ValueError(f"{name} cannot take a {h}x{w} input: sides must be >= {smallest}")
        return self.body(condition)
