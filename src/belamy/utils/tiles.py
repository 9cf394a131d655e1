"""Running a fully convolutional image function (a super-resolution or translation generator) on an image too large
for memory, tile by tile, with overlapping tiles blended so that no seams show."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Starts of the fewest `tile`-long windows covering [0, n) with consecutive windows sharing >= `overlap` pixels,
    spread evenly so the overlaps are about equal and the last window ends flush with the border."""
    if n <= tile:
        return [0]
    k = math.ceil((n - overlap) / (tile - overlap))
    # Steps are at most ceil((n - tile) / (k - 1)) <= tile - overlap, so no overlap falls below `overlap`.
    return [i * (n - tile) // (k - 1) for i in range(k)]


def _blend_weights(length: int, inner_left: bool, inner_right: bool, overlap: int, margin: int) -> Tensor:
    """1-D blending weights of one tile's output (`length` pixels, all in output pixels): 1 inside; at an inner edge,
    0 for the `margin` pixels nearest the edge, then a linear ramp up to 1 at `overlap - margin` from it. For two
    tiles overlapping by exactly `overlap`, the two ramps sum to 1 across the band."""
    d = torch.arange(length, dtype=torch.float32)
    ramp = lambda dist: ((dist - margin + 1) / (overlap - 2 * margin + 1)).clamp(0, 1)  # noqa: E731
    w = torch.ones(length)
    if inner_left:
        w = torch.minimum(w, ramp(d))
    if inner_right:
        w = torch.minimum(w, ramp(length - 1 - d))
    return w


def apply_tiled(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, scale: int = 1) -> Tensor:
    """`fn(x)` computed tile by tile: `fn` maps [B, C, h, w] to [B, C', h * scale, w * scale] and is applied to
    `tile` x `tile` crops of x ([B, C, H, W]) that overlap by at least `overlap` pixels; the result is
    [B, C', H * scale, W * scale], float32 on x's device, allocated once.

    Blending: each tile's output is weighted by the outer product of 1-D ramps (_blend_weights) that fall to zero
    toward inner tile edges (never at the image border, where the tile's edge is the image's), and overlapping
    outputs are averaged with these weights (normalised by their sum). Within the overlap band the outer quarter
    (`overlap // 4` input pixels) nearest a tile's inner edge gets weight 0 and the middle half ramps linearly. Why
    the zero margin: near an inner edge a tile's output sees the tile's zero padding instead of the neighbouring pixels and is wrong; a ramp that only
    approached zero would still mix those wrong values in. Hence the guarantee: if every output pixel depends only on
    input pixels within r of it (receptive-field radius r, in input pixels) and r <= overlap // 4, the result equals
    the untiled fn(x) up to float rounding. Functions with wider (or global, e.g. instance norm) receptive fields
    differ from fn(x) near tile edges, but smoothly, without seams.

    Memory: tiles go through `fn` one at a time (the whole batch per call), so the peak is one tile's activations
    plus the output. Call it under torch.no_grad() for inference: with autograd on, every tile's graph is kept.
    An image no larger than one tile goes through `fn` once and its output is returned as it is.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [B, C, H, W], got shape {tuple(x.shape)}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if tile <= 2 * overlap:
        raise ValueError(f"tile must be larger than 2 * overlap (the two overlap bands of a tile must not meet), "
                         f"got tile={tile}, overlap={overlap}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    b, _, h, w = x.shape
    if h <= tile and w <= tile:
        return fn(x)

    rows, cols = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    o, m = overlap * scale, (overlap // 4) * scale  # the band and its zero margin, in output pixels

    def weights(start: int, size: int, n: int) -> Tensor:
        return _blend_weights(size * scale, start > 0, start + size < n, o, m).to(x.device)

    row_w = [weights(r, th, h) for r in rows]
    col_w = [weights(c, tw, w) for c in cols]
    # Each tile's weight is an outer product and the tiles form a grid, so the weight already blended into any
    # pixel follows from 1-D sums: no full-size weight image is needed.
    sum_w = torch.zeros(w * scale, device=x.device)  # column weights summed over a whole row of tiles
    for c, wc in zip(cols, col_w):
        sum_w[c * scale:(c + tw) * scale] += wc
    done_h = torch.zeros(h * scale, device=x.device)  # row weights of the tile rows already blended in

    out: Tensor | None = None
    for r, wr in zip(rows, row_w):
        rs = slice(r * scale, (r + th) * scale)
        done_w = torch.zeros(w * scale, device=x.device)  # column weights of this row's tiles already blended in
        for c, wc in zip(cols, col_w):
            cs = slice(c * scale, (c + tw) * scale)
            y = fn(x[:, :, r:r + th, c:c + tw])
            if y.dim() != 4 or y.shape[0] != b or y.shape[2:] != (th * scale, tw * scale):
                raise ValueError(f"fn must map [B, C, h, w] to [B, C', h * {scale}, w * {scale}]; a "
                                 f"{th} x {tw} tile gave {tuple(y.shape)}")
            if out is None:  # the output's channel count is known only now
                out = torch.zeros(b, y.shape[1], h * scale, w * scale, dtype=torch.float32, device=x.device)
            weight = wr[:, None] * wc
            before = done_h[rs, None] * sum_w[cs] + wr[:, None] * done_w[cs]  # earlier rows, then this row
            # A running weighted mean, out += (y - out) * w / (w_before + w), rather than a weighted sum divided
            # at the end: where overlapping tiles agree it leaves the value bit for bit as it is (the identity
            # comes back exactly). Where no tile so far has weight, nothing is added (a later tile covers the pixel).
            frac = weight / (before + weight).clamp_min(1e-12)
            region = out[:, :, rs, cs]
            region += (y.float() - region) * frac
            done_w[cs] += wc
        done_h[rs] += wr
    assert out is not None
    return out
