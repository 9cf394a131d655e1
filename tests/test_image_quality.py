"""PSNR and SSIM (belamy.metrics.image_quality) against hand computations and an independent numpy/scipy SSIM
(an explicit 2-D Gaussian window and scipy.signal.convolve2d 'valid', as the paper's ssim_index.m does)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from belamy.metrics.image_quality import psnr, ssim


def _images(b: int = 3, c: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float = 2.0) -> float:
    """SSIM of one [C, H, W] pair written from Wang et al. 2004 directly: fspecial('gaussian', 11, 1.5) as an
    explicit 2-D window, filter2(..., 'valid'), population moments, mean over channels and positions."""
    t = np.arange(11) - 5.0
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    window = np.outer(g, g)
    window /= window.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for a, b in zip(x, y):
        f = lambda img: convolve2d(img, window, mode="valid")  # noqa: E731  (the window is symmetric)
        mu_a, mu_b = f(a), f(b)
        var_a, var_b, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
        values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_psnr_constant_offset_matches_hand_computation():
    x = _images()
    got = psnr(x, x + 0.1)
    assert got.dtype == torch.float64 and got.shape == (3,)
    # MSE = 0.1^2 = 0.01 everywhere, peak^2 = 2^2 = 4.
    assert torch.allclose(got, torch.full((3,), 10 * math.log10(4 / 0.01), dtype=torch.float64), atol=1e-5)
    assert torch.allclose(psnr(x, x + 0.1, data_range=1.0), torch.full((3,), 20.0, dtype=torch.float64), atol=1e-5)


def test_psnr_identical_images_is_inf():
    x = _images()
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()


def test_psnr_mask_counts_only_masked_pixels():
    x = _images(b=2, c=3, h=8, w=8)
    y = x.clone()
    y[:, :, :4] += 0.2    # error 0.2 in the top half
    y[:, :, 4:] += 0.05   # error 0.05 in the bottom half
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1
    expected = 10 * math.log10(4 / 0.04)
    assert torch.allclose(psnr(x, y, mask=mask), torch.full((2,), expected, dtype=torch.float64), atol=1e-5)
    # A per-channel mask selecting the same pixels gives the same numbers; a bool mask works too.
    assert torch.allclose(psnr(x, y, mask=mask.expand(2, 3, 8, 8)), psnr(x, y, mask=mask.bool()))
    # Errors outside the mask do not matter at all.
    y2 = y.clone()
    y2[:, :, 4:] = 5.0
    assert torch.equal(psnr(x, y2, mask=mask), psnr(x, y, mask=mask))


def test_psnr_empty_mask_and_bad_mask_shape_raise():
    x = _images(b=2, h=8, w=8)
    mask = torch.ones(2, 1, 8, 8)
    mask[1] = 0
    with pytest.raises(ValueError, match=r"no pixels.*\[1\]"):
        psnr(x, x + 0.1, mask=mask)
    with pytest.raises(ValueError, match="mask must be"):
        psnr(x, x + 0.1, mask=torch.ones(2, 2, 8, 8))


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\).*\(1, 3, 16, 17\)"):
        fn(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_independent_scipy_implementation(channels):
    x = _images(b=3, c=channels, h=27, w=19, seed=1)
    y = (x + 0.3 * _images(b=3, c=channels, h=27, w=19, seed=2)).clamp(-1, 1)
    got = ssim(x, y)
    assert got.dtype == torch.float64 and got.shape == (3,)
    expected = [_ssim_reference(a.double().numpy(), b.double().numpy()) for a, b in zip(x, y)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_identity_symmetry_and_noise(channels):
    x = _images(c=channels, seed=3)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64), atol=1e-12)
    noise = _images(c=channels, seed=4)
    y = x + 0.1 * noise
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-14)
    scores = [ssim(x, x + s * noise) for s in (0.0, 0.05, 0.2, 0.5, 1.0)]
    for better, worse in zip(scores, scores[1:]):
        assert (worse < better).all()


def test_ssim_small_images_and_bad_window_raise():
    x = _images(h=10, w=30)
    with pytest.raises(ValueError, match="smaller than the 11 x 11"):
        ssim(x, x)
    assert torch.allclose(ssim(x, x, window_size=7), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, window_size=4)
