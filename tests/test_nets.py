"""Every architecture at 8, 28, 32 and 64 pixels, 1 and 3 channels, conditional or not."""

import pytest
import torch

from belamy.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, ResNetDiscriminator, \
    ResNetGenerator
from belamy.nets.layers import ConditionalBatchNorm2d, split_resolution

SIZES = [8, 28, 32, 64]


@pytest.mark.parametrize("resolution", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("family", ["dcgan", "resnet", "mlp"])
def test_generator_and_discriminator_shapes(family, resolution, channels):
    shape = (channels, resolution, resolution)
    if family == "dcgan":
        G, D = DCGANGenerator(shape, 16, 8), DCGANDiscriminator(shape, 8)
    elif family == "resnet":
        G, D = ResNetGenerator(shape, 16, 8), ResNetDiscriminator(shape, 8)
    else:
        G, D = MLPGenerator(shape, 16, 32), MLPDiscriminator(shape, 32)
    x = G(torch.randn(4, 16))
    assert x.shape == (4, *shape)
    assert x.min() >= -1 and x.max() <= 1  # tanh output, the range of the data
    assert D(x).shape == (4,)


@pytest.mark.parametrize("resolution", SIZES)
@pytest.mark.parametrize("variant", ["dcgan-concat", "dcgan-projection", "resnet", "mlp-concat", "mlp-projection"])
def test_conditional_shapes_and_dependence_on_label(variant, resolution):
    shape, k = (1, resolution, resolution), 10
    family, _, condition = variant.partition("-")
    if family == "dcgan":
        G = DCGANGenerator(shape, 16, 8, k, "concat" if condition == "concat" else "cbn")
        D = DCGANDiscriminator(shape, 8, k, condition)
    elif family == "resnet":
        G, D = ResNetGenerator(shape, 16, 8, k), ResNetDiscriminator(shape, 8, k)
    else:
        G, D = MLPGenerator(shape, 16, 32, num_classes=k), MLPDiscriminator(shape, 32, num_classes=k,
                                                                           condition=condition)
    # Make class embeddings non-trivial (CBN starts as identity on purpose) so the label must matter.
    for m in G.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.gain.weight, 1, 0.5)
    z = torch.randn(4, 16)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    G.eval()
    x0, x1 = G(z, y0), G(z, y1)
    assert x0.shape == (4, *shape)
    assert not torch.allclose(x0, x1)
    assert D(x0, y0).shape == (4,)
    assert not torch.allclose(D(x0, y0), D(x0, y1))


def test_conditioning_errors():
    G = DCGANGenerator((1, 8, 8), 16, 8, num_classes=10)
    with pytest.raises(ValueError, match="needs labels"):
        G(torch.randn(2, 16))
    with pytest.raises(ValueError, match="unconditional"):
        DCGANGenerator((1, 8, 8), 16, 8)(torch.randn(2, 16), torch.zeros(2, dtype=torch.long))


def test_split_resolution():
    assert [split_resolution(r) for r in (8, 28, 32, 64, 56, 128)] == [(4, 1), (7, 2), (4, 3), (4, 4), (7, 3), (4, 5)]
    for bad in (4, 30, 100):
        with pytest.raises(ValueError, match=str(bad)):
            split_resolution(bad)


def test_resnet_discriminator_is_spectrally_normalized():
    D = ResNetDiscriminator((3, 32, 32), 16)
    D.train()
    for _ in range(30):  # power iteration converges over forwards
        D(torch.randn(2, 3, 32, 32))
    conv = D.blocks[1].conv1
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.05)


def test_pacgan_packs_samples():
    D = MLPDiscriminator((2,), 32, pack=2)
    assert D(torch.randn(8, 2)).shape == (4,)
    with pytest.raises(ValueError, match="pack"):
        D(torch.randn(7, 2))
