"""Bilinear and trilinear sampling of feature grids in float32, as whole channels-last feature rows.

Sampling runs in float32 whatever the grid's dtype: in bf16 a point's coordinates round to 1/256 of the box
(1/8 of a triplane texel near its edges) and the backward's sums lose every contribution under 1/256 of
the running total. ``sample_rows`` returns the field's layout, [items, points, grids x channels], and on
CUDA reads and writes whole rows (``field_sampling_triton``): one kernel gathers the C features of each
corner (adjacent in a channels-last copy of the grid) straight into that layout, one adds each point's
gradient row into its corners. ``F.grid_sample`` instead writes [grids, C, points], which then needs a
permuted copy each way, and its backward adds one channel at a time, H x W elements apart: on OpenLRM-small's
settings those were the largest device costs of the step (docs/train.md). Elsewhere the forward is
``F.grid_sample`` and the backward ``index_add_`` of whole rows. ``exact=True``, or sample points that need a
gradient themselves, use ``F.grid_sample`` forward and backward (the reference).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def sample_rows(source: torch.Tensor, coords: torch.Tensor, group: int = 1, exact: bool = False) -> torch.Tensor:
    """source [B, C, *S] (S = (H, W) or (D, H, W)), coords [B, M, len(S)] in [-1, 1] (x along the last axis)
    -> [B // group, M, group * C]: each point's features, the ``group`` consecutive grids of an item side by
    side (a triplane's three planes: group 3). Bilinear/trilinear, ``align_corners=False``, zeros outside
    (``F.grid_sample``'s values), in float32; under CUDA autocast the Triton path writes the autocast dtype, the
    value the next Linear casts them to. The gradient reaches ``source`` in its own dtype."""
    if exact or coords.requires_grad:
        return _as_rows(_grid_sample(source, coords), group)
    if source.is_cuda and source.dtype != torch.float64:
        return _TritonRows.apply(source, coords, group)
    if source.requires_grad and torch.is_grad_enabled():
        return _as_rows(_RowGradientSample.apply(source, coords), group)
    return _as_rows(_grid_sample(source, coords), group)


def _as_rows(sampled: torch.Tensor, group: int) -> torch.Tensor:
    """[B, C, M] -> [B // group, M, group * C]."""
    b, c, m = sampled.shape
    return sampled.view(b // group, group, c, m).permute(0, 3, 1, 2).reshape(b // group, m, group * c)


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
    """``F.grid_sample`` forward ([B, C, M]); backward by ``index_add_`` of [C] gradient rows, channels last."""

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
        rows = grad.to(coords.dtype).transpose(1, 2).reshape(-1, c)
        total = rows.new_zeros(b * math.prod(spatial), c)
        for index, weight in _corners(coords, tuple(reversed(spatial))):
            total.index_add_(0, index, rows * weight[:, None])
        return total.view(b, *spatial, c).movedim(-1, 1).to(ctx.source_dtype), None


class _TritonRows(torch.autograd.Function):
    """CUDA: one Triton kernel gathers the rows in their final layout, one scatters their gradient."""

    @staticmethod
    def forward(ctx, source: torch.Tensor, coords: torch.Tensor, group: int) -> torch.Tensor:
        from lrm_dist.model.field_sampling_triton import gather_rows

        coords = coords.float().contiguous()
        device = source.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        ctx.save_for_backward(coords)
        ctx.group, ctx.source_shape, ctx.source_dtype = group, source.shape, source.dtype
        return gather_rows(source, coords, group, dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        from lrm_dist.model.field_sampling_triton import scatter_rows

        (coords,) = ctx.saved_tensors
        spatial = tuple(ctx.source_shape[2:])
        return scatter_rows(grad, coords, spatial, ctx.group).movedim(-1, 1).to(ctx.source_dtype), None, None
