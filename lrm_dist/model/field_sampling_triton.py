"""``field_sampling``'s CUDA path: one Triton kernel gathers feature rows, one scatters their gradient.

Grids are read channels-last ([B, *S, C]), so the C features of one corner are C adjacent values. A
program takes BLOCK_P points of one grid. Forward: it sums weight x row over the 4 (bilinear) or 8
(trilinear) corners in float32 and writes the rows straight into the field's [B // G, M, G * C] layout
(grid b is group member b % G of item b // G: the triplane's three planes side by side), so no permuted
copy follows. Backward: it loads each point's gradient row once and adds weight x row into each corner of
a float32 buffer with relaxed atomics. ``field_sampling`` imports this module lazily (Triton needs CUDA,
or its CPU interpreter).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _corner_frame(coords_ptr, b, p, in_range, M, W, H, D, DIMS: tl.constexpr):
    """Each point's lower corner (x0, y0, z0) and its fractions (fx, fy, fz), grid_sample's align_corners=False."""
    point = coords_ptr + (b * M + p) * DIMS
    x = tl.load(point, mask=in_range, other=0.0)
    y = tl.load(point + 1, mask=in_range, other=0.0)
    if DIMS == 3:
        z = tl.load(point + 2, mask=in_range, other=0.0)
    else:
        z = tl.zeros_like(x)  # with D = 1: the single layer, weight 1
    ix = ((x + 1.0) * W - 1.0) * 0.5
    iy = ((y + 1.0) * H - 1.0) * 0.5
    iz = ((z + 1.0) * D - 1.0) * 0.5
    x0f = tl.floor(ix)
    y0f = tl.floor(iy)
    z0f = tl.floor(iz)
    return x0f.to(tl.int32), y0f.to(tl.int32), z0f.to(tl.int32), ix - x0f, iy - y0f, iz - z0f


@triton.jit
def _corner(x0, y0, z0, fx, fy, fz, in_range, W, H, D, corner: tl.constexpr):
    """Cell index, weight and in-grid mask of one of the 8 corners (``corner`` bits: x, y, z)."""
    dx: tl.constexpr = corner % 2
    dy: tl.constexpr = (corner // 2) % 2
    dz: tl.constexpr = corner // 4
    xi = x0 + dx
    yi = y0 + dy
    zi = z0 + dz
    weight = (fx * dx + (1.0 - fx) * (1 - dx)) * (fy * dy + (1.0 - fy) * (1 - dy)) * (fz * dz + (1.0 - fz) * (1 - dz))
    inside = in_range & (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H) & (zi >= 0) & (zi < D)
    return ((zi * H + yi) * W + xi).to(tl.int64), weight, inside


@triton.jit
def _program_rows(M, C, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's grid b, its points p and channels c, with their in-range masks."""
    b = tl.program_id(1).to(tl.int64)
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, BLOCK_C)
    return b, p, p < M, c, c < C


@triton.jit
def _gather_rows(
    src_ptr, coords_ptr, out_ptr, stride_on, stride_om, M, C, W, H, D, G,
    DIMS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    b, p, in_range, c, c_ok = _program_rows(M, C, BLOCK_P, BLOCK_C)
    x0, y0, z0, fx, fy, fz = _corner_frame(coords_ptr, b, p, in_range, M, W, H, D, DIMS)
    src = src_ptr + b * (W * H * D) * C
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for corner in tl.static_range(4 * (DIMS - 1)):
        cell, weight, inside = _corner(x0, y0, z0, fx, fy, fz, in_range, W, H, D, corner)
        rows = tl.load(src + cell[:, None] * C + c[None, :], mask=inside[:, None] & c_ok[None, :], other=0.0)
        acc += rows.to(tl.float32) * weight[:, None]
    out = out_ptr + (b // G) * stride_on + p[:, None] * stride_om + (b % G) * C + c[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=in_range[:, None] & c_ok[None, :])


@triton.jit
def _scatter_rows(
    grad_ptr, stride_gn, stride_gm, stride_gc, coords_ptr, out_ptr, M, C, W, H, D, G,
    DIMS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    b, p, in_range, c, c_ok = _program_rows(M, C, BLOCK_P, BLOCK_C)
    x0, y0, z0, fx, fy, fz = _corner_frame(coords_ptr, b, p, in_range, M, W, H, D, DIMS)
    rows = tl.load(
        grad_ptr + (b // G) * stride_gn + p[:, None] * stride_gm + ((b % G) * C + c[None, :]) * stride_gc,
        mask=in_range[:, None] & c_ok[None, :], other=0.0,
    ).to(tl.float32)
    out = out_ptr + b * (W * H * D) * C
    for corner in tl.static_range(4 * (DIMS - 1)):
        cell, weight, inside = _corner(x0, y0, z0, fx, fy, fz, in_range, W, H, D, corner)
        tl.atomic_add(out + cell[:, None] * C + c[None, :], rows * weight[:, None],
                      mask=inside[:, None] & c_ok[None, :], sem="relaxed")


_BLOCK_P = 128


def _sizes(spatial: tuple[int, ...]) -> tuple[int, int, int]:
    """(W, H, D) of a (H, W) or (D, H, W) grid (D = 1 for 2D)."""
    depth, height, width = (1, *spatial) if len(spatial) == 2 else spatial
    return width, height, depth


def gather_rows(source: torch.Tensor, coords: torch.Tensor, group: int, dtype: torch.dtype) -> torch.Tensor:
    """source [B, C, *S], coords [B, M, D] float32 contiguous -> [B // group, M, group * C] in ``dtype``."""
    b, c, *spatial = source.shape
    m = coords.shape[1]
    channels_last = source.movedim(1, -1).contiguous()
    out = torch.empty(b // group, m, group * c, device=source.device, dtype=dtype)
    _gather_rows[(triton.cdiv(m, _BLOCK_P), b)](
        channels_last, coords, out, out.stride(0), out.stride(1), m, c, *_sizes(tuple(spatial)), group,
        DIMS=len(spatial), BLOCK_P=_BLOCK_P, BLOCK_C=triton.next_power_of_2(c), num_warps=4,
    )
    return out


def scatter_rows(grad: torch.Tensor, coords: torch.Tensor, spatial: tuple[int, ...], group: int) -> torch.Tensor:
    """grad [B // group, M, group * C] (any strides), coords [B, M, D] float32 contiguous, spatial (H, W) or
    (D, H, W) -> the grids' gradient, channels last: float32 [B, *spatial, C]."""
    n, m, gc = grad.shape
    c = gc // group
    b = n * group
    out = torch.zeros(b, *spatial, c, device=grad.device, dtype=torch.float32)
    _scatter_rows[(triton.cdiv(m, _BLOCK_P), b)](
        grad, grad.stride(0), grad.stride(1), grad.stride(2), coords, out, m, c, *_sizes(spatial), group,
        DIMS=len(spatial), BLOCK_P=_BLOCK_P, BLOCK_C=triton.next_power_of_2(c), num_warps=4,
    )
    return out
