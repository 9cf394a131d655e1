"""Full-reference image quality: PSNR and SSIM between paired images (super-resolution, image-to-image translation,
inpainting), per image.

Both take [B, C, H, W] tensors in belamy's [-1, 1] range (hence `data_range=2.0`) and compute in float64 on the
tensors' device, returning float64 [B]. Average over a data set by the caller (a mean of per-image values, as papers
report them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(x.shape)}")


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(data_range^2 / MSE), [B, C, H, W] x 2 -> float64 [B].

    `mask` ([B, 1, H, W] or [B, C, H, W]; nonzero = count the pixel) restricts the MSE to those pixels, e.g. PSNR
    inside an inpainting hole; a [B, 1, H, W] mask counts every channel of its pixels. An image whose mask selects
    nothing raises ValueError (its PSNR is undefined, and a silent NaN would poison a data-set mean).
    Identical images (MSE 0) give +inf, as the definition does: callers averaging over a data set should decide
    whether to clip or skip them.
    """
    _check_pair(x, y)
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    sq_err = (x.double() - y.double()).square()
    if mask is None:
        mse = sq_err.flatten(1).mean(1)
    else:
        b, c, h, w = x.shape
        if mask.dim() != 4 or mask.shape[0] != b or mask.shape[1] not in (1, c) or mask.shape[2:] != (h, w):
            raise ValueError(f"mask must be [{b}, 1, {h}, {w}] or [{b}, {c}, {h}, {w}], got {tuple(mask.shape)}")
        keep = (mask != 0).expand_as(sq_err).to(sq_err.dtype)
        count = keep.flatten(1).sum(1)
        if (count == 0).any():
            empty = torch.nonzero(count == 0).flatten().tolist()
            raise ValueError(f"mask selects no pixels for image(s) {empty}: PSNR is undefined there")
        mse = (sq_err * keep).flatten(1).sum(1) / count
    # data_range^2 / 0 = inf in float64, so identical images give +inf without a special case.
    return 10 * torch.log10(data_range ** 2 / mse)


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian of `size` taps (the 2-D window is its outer product, MATLAB's
    fspecial('gaussian', size, sigma))."""
    t = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-t.square() / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Structural similarity per image (Wang, Bovik, Sheikh and Simoncelli 2004, "Image Quality Assessment: From
    Error Visibility to Structural Similarity", eq. 13), [B, C, H, W] x 2 -> float64 [B].

    As in the paper's reference code (ssim_index.m) and scikit-image's `structural_similarity(...,
    gaussian_weights=True, use_sample_covariance=False)`: local means, variances and covariance under an 11 x 11
    Gaussian window (sigma 1.5, normalised, separable), biased (population) moments, constants C1 = (k1 L)^2 and
    C2 = (k2 L)^2 with L = data_range, 'valid' filtering only (no padding: the map is (H - 10) x (W - 10)), and the
    mean of the map over positions and channels. Unlike the later ssim.m, images are not downsampled first.

    Images smaller than the window on either side raise ValueError rather than silently shrinking the window: a
    smaller window gives a different metric, and numbers computed with it would not be comparable. Pass a smaller
    (odd) `window_size` explicitly if that is what you want.
    """
    _check_pair(x, y)
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {window_size}")
    b, c, h, w = x.shape
    if h < window_size or w < window_size:
        raise ValueError(f"images of {h} x {w} are smaller than the {window_size} x {window_size} SSIM window; "
                         f"pass a smaller odd window_size (results are then not comparable with the default)")

    # Filter the five maps (x, y, x^2, y^2, xy) in one pass, each channel on its own: [5 * B * C, 1, H, W].
    x, y = x.double(), y.double()
    maps = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * b * c, 1, h, w)
    g = _gaussian_window(window_size, sigma, x.device)
    # The window is separable: rows then columns ('valid', no padding); a symmetric kernel, so correlation is
    # convolution.
    filtered = F.conv2d(F.conv2d(maps, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    mu_x, mu_y, e_xx, e_yy, e_xy = filtered.reshape(5, b, c, h - window_size + 1, w - window_size + 1)

    var_x = e_xx - mu_x.square()
    var_y = e_yy - mu_y.square()
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / \
        ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)
