"""Bilinear and trilinear sampling of feature grids in float32, with a backward that adds whole feature rows.

Sampling runs in float32 whatever the grid's dtype: in bf16 a point's coordinates round to 1/256 of the box
(1/8 of a triplane texel near its edges) and the backward's sums lose every contribution under 1/256 of
the running total. ``F.grid_sample``'s CUDA backward also adds each point's gradient into the [C, *S] input
one channel at a time, C atomic adds prod(S) elements apart; in the recipe's training step its two calls
(triplanes and the lift's volume) were the largest device ops (70 of 307 ms on an H200, docs/train.md).
``sample_grid``'s forward is ``F.grid_sample`` itself; its backward adds each corner's weighted gradient row
into a channels-last float32 buffer (on CUDA one Triton kernel, ``field_sampling_triton``; elsewhere
``index_add_``), so the C adds of one corner land side by side. ``exact=True``, or sample points that need
a gradient themselves, use ``F.grid_sample``'s own backward.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def sample_grid(source: torch.Tensor, coords: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """source [B, C, *S] (S = (H, W) or (D, H, W)), coords [B, M, len(S)] in [-1, 1] (x along the last axis)
    -> [B, C, M] in float32 (float64 for float64 grids); bilinear/trilinear, ``align_corners=False``, zeros
    outside (``F.grid_sample``'s values). The gradient reaches ``source`` in its own dtype."""
    if exact or coords.requires_grad or not (source.requires_grad and torch.is_grad_enabled()):
        return _grid_sample(source, coords)
    return _RowGradientSample.apply(source, coords)


def _grid_sample(source: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    b, m, d = coords.shape
    dtype = torch.promote_types(source.dtype, torch.float32)
    grid = coords.to(dtype).view(b, *([1] * (d - 1)), m, d)
    out = F.grid_sample(source.to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(b, source.shape[1], m)


def _corners(coords: torch.Tensor, sizes: tuple[int, ...]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For coords [B, M, D] over a grid of ``sizes`` (W, H[, D]): per corner, (row index [B*M] into the
    flattened [B * prod(sizes)] cells, weight [B*M], 0 where the corner lies outside the grid)."""
    b, m, d = coords.shape
    size = torch.tensor(sizes, dtype=coords.dtype, device=coords.device)
    pos = ((coords + 1) * size - 1) / 2  # align_corners=False, as grid_sample unnormalises
    low = pos.floor()
    frac = pos - low
    low = low.long()
    strides = [math.prod(sizes[:axis]) for axis in range(d)]
    base = (torch.arange(b, device=coords.device) * math.prod(sizes)).view(b, 1)
    for offsets in itertools.product((0, 1), repeat=d):
        index = base.expand(b, m)
        weight = torch.ones_like(frac[..., 0])
        for axis, offset in enumerate(offsets):
            i = low[..., axis] + offset
            along = frac[..., axis] if offset else 1 - frac[..., axis]
            weight = weight * torch.where((i >= 0) & (i < sizes[axis]), along, torch.zeros_like(along))
            index = index + i.clamp(0, sizes[axis] - 1) * strides[axis]
        yield index.reshape(-1), weight.reshape(-1)


class _RowGradientSample(torch.autograd.Function):
    """``F.grid_sample`` forward; backward by adding [C] gradient rows into a channels-last buffer."""

    @staticmethod
    def forward(ctx, source: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        out = _grid_sample(source, coords)
        ctx.save_for_backward(coords.to(out.dtype).contiguous())
        ctx.source_shape, ctx.source_dtype = source.shape, source.dtype
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (coords,) = ctx.saved_tensors
        b, c, *spatial = ctx.source_shape
        if grad.is_cuda and coords.dtype == torch.float32:
            from lrm_dist.model.field_sampling_triton import scatter_rows

            total = scatter_rows(grad, coords, tuple(spatial))
        else:
            rows = grad.to(coords.dtype).transpose(1, 2).reshape(-1, c)
            total = rows.new_zeros(b * math.prod(spatial), c)
            for index, weight in _corners(coords, tuple(reversed(spatial))):
                total.index_add_(0, index, rows * weight[:, None])
        return total.view(b, *spatial, c).movedim(-1, 1).to(ctx.source_dtype), None
