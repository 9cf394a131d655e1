"""Tiled application of fully convolutional functions (belamy.utils.tiles): for local operators whose receptive-field
radius r is at most overlap // 4 (the zero margin of the blending ramp), tiling gives the untiled result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from belamy.utils.tiles import _tile_starts, apply_tiled


def _conv_stack(scale: int) -> tuple[nn.Module, int]:
    """A fixed random fully convolutional net and its receptive-field radius r in input pixels (zero padding)."""
    torch.manual_seed(0)
    if scale == 1:  # two 3 x 3 convs: r = 2
        net, r = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)), 2
    elif scale == 2:  # 3 x 3 conv, pixel shuffle x2, 3 x 3 conv at the output scale: r = 1 + ceil(1 / 2) = 2
        net, r = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(),
                               nn.Conv2d(4, 3, 3, padding=1)), 2
    else:  # nearest x3, then two 3 x 3 convs at the output scale (radius 2 there): r = ceil(2 / 3) = 1
        net, r = nn.Sequential(nn.Upsample(scale_factor=3, mode="nearest"), nn.Conv2d(3, 8, 3, padding=1),
                               nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)), 1
    return net.eval(), r


def _recording(fn, seen: list):
    def wrapped(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape))
        return fn(t)
    return wrapped


@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize("size", [(37, 53), (15, 47), (41, 41)])
def test_matches_untiled_for_local_operators(scale, size):
    net, r = _conv_stack(scale)
    overlap = 4 * r  # the blending ramp gives weight 0 to the overlap // 4 pixels nearest an inner tile edge
    tile = 2 * overlap + 5
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    seen: list = []
    with torch.no_grad():
        expected = net(x)
        got = apply_tiled(_recording(net, seen), x, tile=tile, overlap=overlap, scale=scale)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # Tiling really happened, and fn never saw more than tile x tile input pixels.
    assert len(seen) > 1 and all(h <= tile and w <= tile for _, _, h, w in seen)


def test_too_small_overlap_is_not_exact():
    """The test above is sensitive: with the zero margin narrower than r, tile-edge errors show."""
    net, r = _conv_stack(1)
    x = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        err = (apply_tiled(net, x, tile=16, overlap=4 * r - 4, scale=1) - net(x)).abs().max()
    assert err > 1e-3


def test_tile_larger_than_image_calls_fn_once():
    net, _ = _conv_stack(2)
    x = torch.randn(1, 3, 20, 30)
    seen: list = []
    with torch.no_grad():
        got = apply_tiled(_recording(net, seen), x, tile=30, overlap=4, scale=2)
        assert torch.equal(got, net(x))
    assert seen == [(1, 3, 20, 30)]


@pytest.mark.parametrize("overlap", [0, 1, 3, 6])
def test_identity_comes_back_exactly(overlap):
    x = torch.randn(2, 3, 45, 38, generator=torch.Generator().manual_seed(3))
    assert torch.equal(apply_tiled(lambda t: t, x, tile=13, overlap=overlap), x)


def test_tile_starts_cover_with_at_least_the_overlap():
    for n in range(1, 80):
        for tile, overlap in [(8, 0), (8, 3), (13, 6), (20, 4)]:
            starts = _tile_starts(n, tile, overlap)
            assert starts[0] == 0 and starts[-1] + min(tile, n) == n
            assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(tile=8, overlap=4), "2 \\* overlap"),
    (dict(tile=8, overlap=-1), "overlap must be >= 0"),
    (dict(tile=8, overlap=2, scale=0), "scale must be >= 1"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        apply_tiled(lambda t: t, torch.zeros(1, 1, 20, 20), **kwargs)


def test_wrong_output_shape_raises():
    with pytest.raises(ValueError, match="fn must map"):
        apply_tiled(lambda t: t, torch.zeros(1, 1, 20, 20), tile=8, overlap=2, scale=2)
