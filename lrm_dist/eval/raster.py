"""A small numpy triangle rasteriser for report images: z-buffered, flat-shaded, no GPU, no OpenGL.

Cameras follow ``lrm_dist.geometry.cameras`` (OpenGL c2w, pixel intrinsics), so a mesh rendered with
a shard view's camera lines up with that view's image.
"""

from __future__ import annotations

import numpy as np

from lrm_dist.geometry.pairs import pair_chunks

MAX_PAIRS = 3_000_000
"""Pixel-triangle candidate pairs per numpy pass (bounds memory)."""


def _project(vertices: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x right, y down) and camera-space depth (> 0 in front) of each vertex."""
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    cam = np.asarray(vertices, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -cam[:, 2]
    fx, fy, cx, cy = intrinsics[:4]
    safe = np.where(depth > 1e-9, depth, 1e-9)
    return np.stack([fx * cam[:, 0] / safe + cx, -fy * cam[:, 1] / safe + cy], axis=1), depth


def _scaled(intrinsics: np.ndarray, size: int) -> np.ndarray:
    k = np.asarray(intrinsics, dtype=np.float64).copy()
    k[[0, 2]] *= size / k[4]
    k[[1, 3]] *= size / k[5]
    k[4] = k[5] = size
    return k


def rasterize(vertices: np.ndarray, faces: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, size: int) -> np.ndarray:
    """The nearest face seen through each pixel centre: int64 [size, size], -1 for background.

    ``intrinsics`` are the camera's pixel intrinsics of any image size; they are rescaled to ``size``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    zbuf = np.full(size * size, np.inf)
    owner = np.full(size * size, -1, dtype=np.int64)
    if len(faces) == 0:
        return owner.reshape(size, size)
    xy, depth = _project(vertices, c2w, _scaled(intrinsics, size))
    tri_xy, tri_depth = xy[faces], depth[faces]
    e1, e2 = tri_xy[:, 1] - tri_xy[:, 0], tri_xy[:, 2] - tri_xy[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    lo = np.floor(tri_xy.min(axis=1) - 0.5).astype(np.int64).clip(0, size - 1)
    hi = np.ceil(tri_xy.max(axis=1) - 0.5).astype(np.int64).clip(0, size - 1)
    visible = ((tri_depth > 1e-6).all(axis=1) & (np.abs(area) > 1e-12)
               & (tri_xy.max(axis=1) >= 0).all(axis=1) & (tri_xy.min(axis=1) <= size).all(axis=1))
    keep = np.nonzero(visible)[0]
    counts = (hi[keep, 0] - lo[keep, 0] + 1) * (hi[keep, 1] - lo[keep, 1] + 1)
    for _, _, item, local in pair_chunks(counts, MAX_PAIRS):
        f_idx = keep[item]
        width = hi[f_idx, 0] - lo[f_idx, 0] + 1
        px, py = lo[f_idx, 0] + local % width, lo[f_idx, 1] + local // width
        u, v = px + 0.5, py + 0.5
        a, b, cc = tri_xy[f_idx, 0], tri_xy[f_idx, 1], tri_xy[f_idx, 2]
        w0 = (b[:, 0] - u) * (cc[:, 1] - v) - (b[:, 1] - v) * (cc[:, 0] - u)
        w1 = (cc[:, 0] - u) * (a[:, 1] - v) - (cc[:, 1] - v) * (a[:, 0] - u)
        w2 = (a[:, 0] - u) * (b[:, 1] - v) - (a[:, 1] - v) * (b[:, 0] - u)
        ar = area[f_idx]
        l0, l1, l2 = w0 / ar, w1 / ar, w2 / ar
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        d = tri_depth[f_idx]
        z = 1.0 / (l0 / d[:, 0] + l1 / d[:, 1] + l2 / d[:, 2])  # perspective-correct depth
        pix, z, f_idx = (py * size + px)[inside], z[inside], f_idx[inside]
        order = np.lexsort((z, pix))
        pix, z, f_idx = pix[order], z[order], f_idx[order]
        first = np.ones(len(pix), dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        pix, z, f_idx = pix[first], z[first], f_idx[first]
        nearer = z < zbuf[pix]
        zbuf[pix[nearer]] = z[nearer]
        owner[pix[nearer]] = f_idx[nearer]
    return owner.reshape(size, size)


def render_mesh(
    vertices: np.ndarray, faces: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, size: int,
    color: tuple[float, float, float] = (0.72, 0.74, 0.78), face_colors: np.ndarray | None = None,
    background: float = 1.0,
) -> np.ndarray:
    """Render a mesh seen by one camera at ``size`` x ``size`` pixels -> uint8 [size, size, 3].

    Flat shading with a headlight (both face sides lit, so inverted windings still read); ``face_colors``
    [F, 3] in [0, 1] overrides ``color``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    owner = rasterize(vertices, faces, c2w, intrinsics, size).reshape(-1)
    image = np.full((size * size, 3), background, dtype=np.float64)
    hit = owner >= 0
    if hit.any():
        world = np.asarray(vertices, dtype=np.float64)[faces]
        normal = np.cross(world[:, 1] - world[:, 0], world[:, 2] - world[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        view = world.mean(axis=1) - np.asarray(c2w, dtype=np.float64)[:3, 3]
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
        lambert = np.abs(np.einsum("ij,ij->i", normal, view))
        base = np.broadcast_to(np.asarray(color, dtype=np.float64), (len(faces), 3)) if face_colors is None else face_colors
        shade = base * (0.25 + 0.75 * lambert)[:, None]
        image[hit] = shade[owner[hit]]
    return (image.reshape(size, size, 3).clip(0, 1) * 255).round().astype(np.uint8)
