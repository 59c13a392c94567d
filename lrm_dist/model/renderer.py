"""Volume rendering of a density/colour field inside the [-1, 1]^3 box: rays, samples, compositing.

Cameras follow ``lrm_dist.geometry.cameras``: camera-to-world 4x4 in the OpenGL/Blender convention
(camera looks down -z, y up) and intrinsics normalised by the image size, ``(fx/W, fy/H, cx/W, cy/H)``,
pixel (row i, col j) centred at ((j + 0.5) / W, (i + 0.5) / H), rows going down. Each ray is clipped to
the box; half of the samples are stratified over the clipped segment and half are drawn from the
coarse weights (importance sampling); samples are composited at interval midpoints (MipNeRF style).
Sampling is deterministic unless ``jitter`` is set (training), so a patch renders exactly the pixels
of the matching crop of the full image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FieldFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""points [N, M, 3] -> (rgb [N, M, 3], raw density [N, M]) (density before its activation)."""

BOX_HALF = 1.0


def activate_density(raw: torch.Tensor) -> torch.Tensor:
    """OpenLRM's density activation: softplus(raw - 1)."""
    return F.softplus(raw - 1.0)


def camera_rays(
    c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int,
    anchors: torch.Tensor | None = None, patch_hw: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World-space rays of a (patch of an) image.

    c2w: [N, V, 4, 4]; intrinsics: [N, V, 4] normalised; anchors: [N, V, 2] (row, col) of the patch's
    top-left pixel in the ``height x width`` image (None: the whole image). Returns origins and unit
    directions [N, V, h*w, 3] (row-major pixels) and the cosine between each ray and the camera's
    viewing axis [N, V, h*w] (ray distance * cosine = planar depth).
    """
    n, v = c2w.shape[:2]
    h, w = (height, width) if patch_hw is None else patch_hw
    device, dtype = c2w.device, c2w.dtype
    rows = torch.arange(h, device=device, dtype=dtype).view(1, 1, h, 1).expand(n, v, h, w)
    cols = torch.arange(w, device=device, dtype=dtype).view(1, 1, 1, w).expand(n, v, h, w)
    if anchors is not None:
        rows = rows + anchors[..., 0].to(dtype).view(n, v, 1, 1)
        cols = cols + anchors[..., 1].to(dtype).view(n, v, 1, 1)
    fx, fy, cx, cy = (intrinsics[..., k].view(n, v, 1, 1) for k in range(4))
    x = ((cols + 0.5) / width - cx) / fx
    y = -((rows + 0.5) / height - cy) / fy
    dirs_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1).view(n, v, h * w, 3)
    cosine = 1.0 / dirs_cam.norm(dim=-1)
    dirs = F.normalize(dirs_cam @ c2w[..., :3, :3].transpose(-1, -2), dim=-1)
    origins = c2w[..., :3, 3].unsqueeze(2).expand_as(dirs)
    return origins, dirs, cosine


def ray_box(origins: torch.Tensor, dirs: torch.Tensor, half: float = BOX_HALF) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the box [-half, half]^3 (slab test); equal for misses."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-half - origins) / safe, (half - origins) / safe
    near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    miss = far <= near
    return torch.where(miss, torch.zeros_like(near), near), torch.where(miss, torch.zeros_like(far), far)


def stratified_depths(near: torch.Tensor, far: torch.Tensor, n: int, jitter: bool) -> torch.Tensor:
    """``n`` depths per ray, one in each of ``n`` equal bins of [near, far] (bin centres unless jitter)."""
    offsets = torch.rand(*near.shape, n, device=near.device, dtype=near.dtype) if jitter else 0.5
    bins = torch.arange(n, device=near.device, dtype=near.dtype)
    return near.unsqueeze(-1) + (bins + offsets) / n * (far - near).unsqueeze(-1)


def importance_depths(depths: torch.Tensor, weights: torch.Tensor, n: int, jitter: bool) -> torch.Tensor:
    """``n`` depths drawn from the piecewise-constant pdf of ``weights`` over the intervals of ``depths``.

    The weights ([..., S-1], one per interval) are widened by a max-then-mean filter over neighbours
    and given a small floor so empty rays still sample their whole segment.
    """
    with torch.no_grad():
        shape = weights.shape
        flat = weights.reshape(-1, 1, shape[-1]).float()
        flat = F.max_pool1d(F.pad(flat, (1, 1), mode="replicate"), 2, 1)
        flat = F.avg_pool1d(flat, 2, 1).reshape(shape) + 0.01
        cdf = torch.cumsum(flat / flat.sum(-1, keepdim=True), dim=-1)
        cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], dim=-1).clamp_max(1.0).contiguous()
        if jitter:
            u = torch.rand(*shape[:-1], n, device=weights.device)
        else:
            u = ((torch.arange(n, device=weights.device) + 0.5) / n).expand(*shape[:-1], n)
        u = u.contiguous()
        idx = torch.searchsorted(cdf, u, right=True).clamp(1, shape[-1])
        cdf_lo, cdf_hi = cdf.gather(-1, idx - 1), cdf.gather(-1, idx)
        t_lo, t_hi = depths.float().gather(-1, idx - 1), depths.float().gather(-1, idx)
        frac = ((u - cdf_lo) / (cdf_hi - cdf_lo).clamp_min(1e-8)).clamp(0.0, 1.0)
        return (t_lo + frac * (t_hi - t_lo)).to(depths.dtype)


@dataclass
class Composite:
    """Per-ray results of compositing: colour (no background), opacity, expected distance, weights."""

    rgb: torch.Tensor       # [..., 3]
    opacity: torch.Tensor   # [...]
    distance: torch.Tensor  # [...] opacity-normalised expected distance along the ray
    weights: torch.Tensor   # [..., S-1] per interval


def composite(depths: torch.Tensor, raw_density: torch.Tensor, rgb: torch.Tensor) -> Composite:
    """Alpha-composite samples sorted by depth ([..., S], [..., S], [..., S, 3]) at interval midpoints."""
    deltas = depths[..., 1:] - depths[..., :-1]
    density = activate_density((raw_density[..., 1:] + raw_density[..., :-1]) / 2)
    colour = (rgb[..., 1:, :] + rgb[..., :-1, :]) / 2
    mids = (depths[..., 1:] + depths[..., :-1]) / 2
    alpha = 1.0 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], -1), -1)
    weights = alpha * transmittance[..., :-1]
    opacity = weights.sum(-1)
    distance = (weights * mids).sum(-1) / opacity.clamp_min(1e-6)
    distance = torch.minimum(torch.maximum(distance, depths[..., 0]), depths[..., -1])
    return Composite((weights.unsqueeze(-1) * colour).sum(-2), opacity, distance, weights)


def render_rays(
    field: FieldFn, origins: torch.Tensor, dirs: torch.Tensor, samples_per_ray: int, jitter: bool,
) -> Composite:
    """Render rays [N, R, 3] through ``field``: coarse stratified pass, importance pass, final composite."""
    n, r = origins.shape[:2]
    n_coarse = samples_per_ray // 2
    n_fine = samples_per_ray - n_coarse
    near, far = ray_box(origins, dirs)

    def run(depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = origins.unsqueeze(2) + depths.unsqueeze(-1) * dirs.unsqueeze(2)
        rgb, raw = field(points.reshape(n, -1, 3))
        s = depths.shape[-1]
        return rgb.reshape(n, r, s, 3), raw.reshape(n, r, s)

    t_coarse = stratified_depths(near, far, n_coarse, jitter)
    rgb_coarse, raw_coarse = run(t_coarse)
    if n_fine == 0:
        return composite(t_coarse, raw_coarse, rgb_coarse)
    coarse = composite(t_coarse, raw_coarse, rgb_coarse)
    t_fine = importance_depths(t_coarse, coarse.weights, n_fine, jitter)
    rgb_fine, raw_fine = run(t_fine)
    t_all, order = torch.sort(torch.cat([t_coarse, t_fine], -1), dim=-1)
    raw_all = torch.cat([raw_coarse, raw_fine], -1).gather(-1, order)
    rgb_all = torch.cat([rgb_coarse, rgb_fine], -2).gather(-2, order.unsqueeze(-1).expand(-1, -1, -1, 3))
    return composite(t_all, raw_all, rgb_all)
