"""``field_sampling``'s backward as one Triton kernel: each point's corners get its weighted gradient row.

A program takes BLOCK_P points of one grid, loads their [C] gradient rows once, and for each of the 4
(bilinear) or 8 (trilinear) corners adds weight x row into a channels-last float32 buffer with relaxed
atomics: C adjacent addresses per corner, no temporaries. CUDA only; ``field_sampling`` imports it lazily.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _scatter_rows(
    grad_ptr, stride_gb, stride_gc, stride_gm, coords_ptr, out_ptr, M, C, W, H, D,
    DIMS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    b = tl.program_id(1).to(tl.int64)
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    in_range = p < M
    c = tl.arange(0, BLOCK_C)
    c_ok = c < C
    point = coords_ptr + (b * M + p) * DIMS
    x = tl.load(point, mask=in_range, other=0.0)
    y = tl.load(point + 1, mask=in_range, other=0.0)
    if DIMS == 3:
        z = tl.load(point + 2, mask=in_range, other=0.0)
    else:
        z = tl.zeros_like(x)  # with D = 1: the single layer, weight 1
    # grid_sample's unnormalisation with align_corners=False
    ix = ((x + 1.0) * W - 1.0) * 0.5
    iy = ((y + 1.0) * H - 1.0) * 0.5
    iz = ((z + 1.0) * D - 1.0) * 0.5
    x0f = tl.floor(ix)
    y0f = tl.floor(iy)
    z0f = tl.floor(iz)
    fx, fy, fz = ix - x0f, iy - y0f, iz - z0f
    x0, y0, z0 = x0f.to(tl.int32), y0f.to(tl.int32), z0f.to(tl.int32)
    rows = tl.load(
        grad_ptr + b * stride_gb + c[None, :] * stride_gc + p[:, None] * stride_gm,
        mask=in_range[:, None] & c_ok[None, :], other=0.0,
    ).to(tl.float32)
    out = out_ptr + b * (W * H * D) * C
    for corner in tl.static_range(4 * (DIMS - 1)):
        dx = corner % 2
        dy = (corner // 2) % 2
        dz = corner // 4
        xi, yi, zi = x0 + dx, y0 + dy, z0 + dz
        weight = (fx * dx + (1.0 - fx) * (1 - dx)) * (fy * dy + (1.0 - fy) * (1 - dy)) * (fz * dz + (1.0 - fz) * (1 - dz))
        inside = in_range & (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H) & (zi >= 0) & (zi < D)
        cell = ((zi * H + yi) * W + xi).to(tl.int64)
        tl.atomic_add(out + cell[:, None] * C + c[None, :], rows * weight[:, None],
                      mask=inside[:, None] & c_ok[None, :], sem="relaxed")


def scatter_rows(grad: torch.Tensor, coords: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """grad [B, C, M] (any strides), coords [B, M, D] float32 contiguous, spatial (H, W) or (D, H, W)
    -> the source's gradient, channels last: float32 [B, *spatial, C]."""
    b, c, m = grad.shape
    dims = len(spatial)
    depth, height, width = (1, *spatial) if dims == 2 else spatial
    out = torch.zeros(b, *spatial, c, device=grad.device, dtype=torch.float32)
    block_p = 128
    _scatter_rows[(triton.cdiv(m, block_p), b)](
        grad, grad.stride(0), grad.stride(1), grad.stride(2), coords, out, m, c, width, height, depth,
        DIMS=dims, BLOCK_P=block_p, BLOCK_C=triton.next_power_of_2(c), num_warps=4,
    )
    return out
