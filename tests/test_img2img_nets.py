"""Image-to-image networks: U-Net, ResNet translator, SRResNet (generators), PatchGAN and SRGAN discriminators."""

import pytest
import torch
from torch import nn

from belamy.nets.patchgan import PatchDiscriminator, patch_receptive_field
from belamy.nets.srresnet import SRDiscriminator, SRResNetGenerator
from belamy.nets.translator import ResNetTranslator
from belamy.nets.unet import UNetGenerator


def _no_z(batch: int) -> torch.Tensor:
    return torch.empty(batch, 0)


def _generators() -> dict[str, nn.Module]:
    return {
        "unet": UNetGenerator(3, 1, 32, width=4, max_width=16),
        "translator": ResNetTranslator(3, 1, width=4, n_blocks=2),
        "srresnet": SRResNetGenerator(3, 2, width=4, n_blocks=2),
        "srresnet-tanh": SRResNetGenerator(3, 2, width=4, n_blocks=2, residual=False),
    }


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_unet_and_translator_shapes_and_range(resolution, channels):
    x = torch.rand(2, channels, resolution, resolution) * 2 - 1
    for G in (UNetGenerator(channels, channels, resolution, width=4, max_width=16),
              ResNetTranslator(channels, channels, width=4, n_blocks=2)):
        assert G.latent_dim == 0
        y = G(_no_z(2), x)
        assert y.shape == x.shape
        assert y.min() >= -1 and y.max() <= 1


def test_unet_depths_and_sizes():
    G = UNetGenerator(3, 3, 256, width=4, max_width=16)
    assert G.depth == 8 and G.size_multiple == 256
    assert G(_no_z(1), torch.zeros(1, 3, 256, 256)).shape == (1, 3, 256, 256)
    assert UNetGenerator(1, 1, 16, width=4).size_multiple == 16
    G28 = UNetGenerator(1, 2, 28, width=4, depth=2)  # 28 = 7 * 4
    assert G28.size_multiple == 4
    assert G28(_no_z(2), torch.zeros(2, 1, 28, 28)).shape == (2, 2, 28, 28)
    with pytest.raises(ValueError, match="28"):
        UNetGenerator(1, 1, 28)  # not a power of two
    with pytest.raises(ValueError, match="28"):
        UNetGenerator(1, 1, 28, depth=3)  # 28 not divisible by 8
    with pytest.raises(ValueError, match="30x30"):
        UNetGenerator(1, 1, 32, width=4)(_no_z(1), torch.zeros(1, 1, 30, 30))


def test_translator_refuses_bad_sizes():
    G = ResNetTranslator(1, 1, width=4, n_blocks=1)
    assert G.size_multiple == 4
    with pytest.raises(ValueError, match="30x30"):
        G(_no_z(1), torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match="4x4"):
        G(_no_z(1), torch.zeros(1, 1, 4, 4))  # a multiple of 4, but too small for the reflection padding
    assert ResNetTranslator(1, 1, width=4, n_blocks=1, upsample="nearest")(_no_z(1), torch.zeros(1, 1, 8, 12)).shape \
        == (1, 1, 8, 12)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("residual", [True, False])
def test_srresnet_upscales(scale, channels, residual):
    G = SRResNetGenerator(channels, scale, width=4, n_blocks=2, residual=residual)
    assert G.latent_dim == 0
    x = torch.rand(2, channels, 8, 12) * 2 - 1
    y = G(_no_z(2), x)
    assert y.shape == (2, channels, 8 * scale, 12 * scale)
    assert y.min() >= -1 and y.max() <= 1


def test_srresnet_scale_3_raises():
    with pytest.raises(ValueError, match="3"):
        SRResNetGenerator(3, 3)


def test_residual_srresnet_starts_as_bicubic_and_learns_out_of_range_pixels():
    G = SRResNetGenerator(1, 2, width=4, n_blocks=1)
    x = torch.rand(1, 1, 8, 8) * 2 - 1
    x[..., 4:, :] = 1.0  # a sharp edge: bicubic overshoots beyond 1 near it
    bicubic = nn.functional.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=False)
    assert bicubic.max() > 1
    y = G(_no_z(1), x)
    torch.testing.assert_close(y, bicubic.clamp(-1, 1))
    # Straight-through clamp: a clamped pixel still passes gradient to the network (a plain clamp would give 0).
    y[bicubic > 1].sum().backward()
    assert G.to_image.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_shapes(resolution, channels):
    x = torch.randn(2, channels, resolution, resolution)
    n_layers = 2 if resolution == 32 else 3
    logits = PatchDiscriminator(channels, width=4, n_layers=n_layers)(x)
    side = resolution // 2**n_layers - 2  # 6 at 32 px (n_layers=2), 6 at 64 px (n_layers=3)
    assert logits.shape == (2, 1, side, side)
    # Conditional (pix2pix) use: input and output concatenated along the channels.
    assert PatchDiscriminator(2 * channels, width=4, n_layers=n_layers, sn=True)(torch.cat([x, x], 1)).shape \
        == (2, 1, side, side)
    for sn in (False, True):
        assert SRDiscriminator(channels, width=4, sn=sn)(x).shape == (2,)
    with pytest.raises(ValueError, match="16x16"):
        PatchDiscriminator(channels, width=4, n_layers=3)(torch.zeros(1, channels, 16, 16))


def test_patch_receptive_field_formula():
    assert patch_receptive_field(3) == 70  # the paper's 70x70 PatchGAN
    assert [patch_receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patch_receptive_field_measured(n_layers):
    """The input region that one central logit's gradient reaches spans patch_receptive_field(n_layers) pixels.
    Without norm: instance norm's statistics would make every logit depend on the whole image."""
    D = PatchDiscriminator(1, width=4, n_layers=n_layers, norm="none").double()
    x = torch.randn(1, 1, 128, 128, dtype=torch.double, requires_grad=True)
    logits = D(x)
    h, w = logits.shape[2:]
    logits[0, 0, h // 2, w // 2].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero().squeeze(1)
    cols = x.grad[0, 0].abs().sum(dim=0).nonzero().squeeze(1)
    assert 0 < rows.min() and rows.max() < 127  # the field lies inside the image: no clipping by the borders
    assert rows.max() - rows.min() + 1 == patch_receptive_field(n_layers)
    assert cols.max() - cols.min() + 1 == patch_receptive_field(n_layers)


def test_patch_discriminator_is_independent_of_the_batch():
    D = PatchDiscriminator(3, width=4, n_layers=2)  # instance norm, training mode
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(D(x[2:3]), D(x)[2:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(_generators()))
def test_generators_are_independent_of_the_batch(name):
    G = _generators()[name].eval()  # eval: no dropout
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(G(_no_z(1), x[1:2]), G(_no_z(4), x)[1:2], rtol=1e-5, atol=1e-5)


def test_no_batch_norm_anywhere():
    nets = list(_generators().values()) + [PatchDiscriminator(3, width=4), SRDiscriminator(3, width=4),
                                           UNetGenerator(3, 3, 256, width=4, max_width=16)]
    for net in nets:
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()), type(net).__name__


def test_unet_dropout_only_in_the_three_innermost_decoder_levels():
    G = UNetGenerator(1, 1, 64, width=4)  # depth 6
    with_dropout = [i for i, up in enumerate(G.up) if any(isinstance(m, nn.Dropout) for m in up)]
    assert with_dropout == [3, 4, 5]
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(1, 1, 64, width=4, dropout=0).modules())


def test_unet_skip_connections_connect():
    """Cut the path below the outermost level (level 1's conv outputs a constant): the output still depends on
    the input, through the outermost skip connection only, hence locally around each pixel."""
    G = UNetGenerator(1, 1, 32, width=4, dropout=0).eval()
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    G(_no_z(1), x)[0, 0, 16, 16].backward()
    far = x.grad[0, 0].clone()
    far[8:25, 8:25] = 0
    assert far.abs().sum() > 0  # the intact U-Net mixes the whole image through its bottleneck

    conv1 = G.down[1][1]
    with torch.no_grad():
        conv1.weight.zero_()
    x.grad = None
    y = G(_no_z(1), x)
    y[0, 0, 16, 16].backward()
    grad = x.grad[0, 0]
    assert grad.abs().sum() > 0  # the skip connection carries the input to the output
    outside = grad.clone()
    outside[12:21, 12:21] = 0  # 4x4 stride-2 conv then 4x4 stride-2 transposed conv: a few pixels around (16, 16)
    assert outside.abs().sum() == 0
