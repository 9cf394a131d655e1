"""The PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017, section 3.2.2 and appendix 6.1.2; Zhu et
al. 2017; after Li & Wand 2016): a fully convolutional net whose every output logit judges one N x N patch of the
input, so it penalizes structure at the scale of patches and runs on any image size.

Layers (the reference code's NLayerDiscriminator): `n_layers` 4x4 stride-2 convs (C64-C128-C256 for n_layers=3,
no norm on the first), then a 4x4 stride-1 conv (C512) and a 4x4 stride-1 conv to 1 logit per patch; LeakyReLU(0.2)
after every conv but the last. Channels double per layer up to 8 * width.

Receptive field: going back from one logit, a k=4 stride-1 conv adds 3 pixels, a k=4 stride-2 conv maps a field r
to 2r + 2. From the 7 pixels of the two stride-1 convs, `n_layers` stride-2 convs give
    r(n) = 2**n * 7 + 2 * (2**n - 1) = 9 * 2**n - 2:  16, 34, 70, 142 for n = 1, 2, 3, 4.
n_layers=3 is the paper's 70x70 PatchGAN (for 256 px images); at 32 px, n_layers=2 (34x34, about the whole image)
is the usual choice, as a 70x70 field would see mostly zero padding. With instance norm every logit also depends on
the whole image through the norm's statistics; the field above is that of the convolutions.

Conditional discrimination (pix2pix's D(x, y)) is the caller's: concatenate the input and the (real or generated)
output along the channels, and give in_channels = C_in + C_out.
"""

from __future__ import annotations

from torch import Tensor, nn

from belamy.nets.layers import spectral_norm
from belamy.nets.unet import NORMS, norm2d, pix2pix_init


def patch_receptive_field(n_layers: int) -> int:
    """Side in pixels of the input patch one logit of PatchDiscriminator(n_layers=...) sees: 9 * 2**n_layers - 2."""
    return 9 * 2**n_layers - 2


class PatchDiscriminator(nn.Module):
    def __init__(
        self,
        in_channels: int,  # channels of the judged image; pix2pix: C_in + C_out (input and output concatenated)
        width: int = 64,  # channels of the first conv (ndf); doubled per layer up to 8 * width
        n_layers: int = 3,  # stride-2 convs: receptive field 9 * 2**n_layers - 2 (3: 70x70; 2: 34x34 for 32 px)
        norm: str = "instance",  # "instance" (per sample, as the reference with batch size 1) or "none"
        sn: bool = False,  # spectral norm on every conv (Miyato et al. 2018)
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: one of {', '.join(NORMS)}")
        self.in_channels, self.n_layers = in_channels, n_layers
        self.receptive_field = patch_receptive_field(n_layers)
        # [B, in_channels, H, W] -> [B, width, H/2, W/2]: no norm on the input layer (as DCGAN's D)
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, width, 4, 2, 1), sn), nn.LeakyReLU(0.2)]
        ch = width
        for n in range(1, n_layers + 1):
            # n < n_layers: stride 2, [B, ch, h, w] -> [B, out, h/2, w/2]; n == n_layers: stride 1, h -> h - 1
            out, stride = width * min(2**n, 8), 2 if n < n_layers else 1
            layers += [spectral_norm(nn.Conv2d(ch, out, 4, stride, 1, bias=norm == "none"), sn), norm2d(norm, out),
                       nn.LeakyReLU(0.2)]
            ch = out
        layers.append(spectral_norm(nn.Conv2d(ch, 1, 4, 1, 1), sn))  # one logit per patch, h - 1 -> h - 2
        self.body = nn.Sequential(*layers)
        pix2pix_init(self)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, in_channels, H, W] -> logits [B, 1, H / 2**n_layers - 2, W / 2**n_layers - 2] (for sides divisible
        by 2**n_layers), one per receptive_field x receptive_field patch."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PatchDiscriminator expects [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        for side in x.shape[2:]:
            if side >> self.n_layers < 3:  # the last conv needs 3 pixels -> 1 logit (and instance norm 2x2)
                raise ValueError(f"a {x.shape[2]}x{x.shape[3]} input is too small for PatchDiscriminator with "
                                 f"n_layers={self.n_layers}: sides must be >= {3 * 2**self.n_layers}")
        return self.body(x)
