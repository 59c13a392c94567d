"""Robust, fast inside/outside test of many points against a closed triangle mesh.

Ray parity along each of the three axes, with a majority vote. A ray through an edge or a vertex
counts it once (ties broken by a symbolic perturbation of the point); the vote absorbs what is
left (a point on the surface itself, a small hole in a not-quite-closed prediction). Candidate
triangles come from a 2D grid over the plane perpendicular to the ray, so the work grows with the
number of triangles a point's column crosses, not with the whole mesh (vectorised numpy: about a
second for 100k points against a 100k-face mesh).
"""

from __future__ import annotations

import numpy as np

from lrm_dist.geometry.pairs import pair_chunks

MAX_PAIRS = 4_000_000
"""Point-triangle pairs evaluated per numpy pass (bounds memory to a few hundred MB)."""


def _cell_triangle_table(tri2: np.ndarray, low: np.ndarray, cell: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """For a grid x grid table over the plane: (start offsets per cell [grid*grid+1], triangle ids sorted by cell)."""
    lo = np.floor((tri2.min(axis=1) - low) / cell).astype(np.int64).clip(0, grid - 1)
    hi = np.floor((tri2.max(axis=1) - low) / cell).astype(np.int64).clip(0, grid - 1)
    span = hi - lo + 1
    counts = span[:, 0] * span[:, 1]
    tri_id = np.repeat(np.arange(len(tri2)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    width = span[tri_id, 1]
    ci = lo[tri_id, 0] + local // width
    cj = lo[tri_id, 1] + local % width
    cell_id = ci * grid + cj
    order = np.argsort(cell_id, kind="stable")
    starts = np.searchsorted(cell_id[order], np.arange(grid * grid + 1))
    return starts, tri_id[order]


def _edge_sign(w: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sign of an edge function, ties broken as if the point moved by (eps, eps^2) (simulation of simplicity).

    A point exactly on an edge shared by two triangles then falls in exactly one of them, and a point
    on a vertex in exactly one triangle of its fan, so grid-aligned points on axis-aligned meshes work.
    """
    tie = np.where(start[:, 1] != end[:, 1], np.sign(start[:, 1] - end[:, 1]), np.sign(end[:, 0] - start[:, 0]))
    return np.where(w != 0, np.sign(w), tie)


def _parity_along(triangles: np.ndarray, points: np.ndarray, axis: int) -> np.ndarray:
    """Whether a ray from each point towards +axis crosses the surface an odd number of times."""
    u, v = [a for a in range(3) if a != axis]
    tri2 = triangles[:, :, [u, v]]
    e1, e2 = tri2[:, 1] - tri2[:, 0], tri2[:, 2] - tri2[:, 0]
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    keep = np.abs(area2) > 1e-18  # faces parallel to the ray are never crossed through their interior
    tri2, tri_w, area2 = tri2[keep], triangles[keep][:, :, axis], area2[keep]
    odd = np.zeros(len(points), dtype=bool)
    if len(tri2) == 0:
        return odd
    p2 = points[:, [u, v]]
    low = np.minimum(p2.min(0), tri2.reshape(-1, 2).min(0))
    high = np.maximum(p2.max(0), tri2.reshape(-1, 2).max(0))
    grid = int(np.clip(2 * np.sqrt(len(tri2)), 8, 256))
    cell = np.maximum((high - low) / grid, 1e-12)
    starts, tri_sorted = _cell_triangle_table(tri2, low, cell, grid)
    pc = np.floor((p2 - low) / cell).astype(np.int64).clip(0, grid - 1)
    pcell = pc[:, 0] * grid + pc[:, 1]
    first, n_cand = starts[pcell], starts[pcell + 1] - starts[pcell]
    for begin, end, p_idx, offset in pair_chunks(n_cand, MAX_PAIRS):
        t_idx = tri_sorted[first[p_idx] + offset]
        a, b, c = tri2[t_idx, 0], tri2[t_idx, 1], tri2[t_idx, 2]
        p = p2[p_idx]
        w_a = (b[:, 0] - p[:, 0]) * (c[:, 1] - p[:, 1]) - (b[:, 1] - p[:, 1]) * (c[:, 0] - p[:, 0])
        w_b = (c[:, 0] - p[:, 0]) * (a[:, 1] - p[:, 1]) - (c[:, 1] - p[:, 1]) * (a[:, 0] - p[:, 0])
        w_c = (a[:, 0] - p[:, 0]) * (b[:, 1] - p[:, 1]) - (a[:, 1] - p[:, 1]) * (b[:, 0] - p[:, 0])
        s_a, s_b, s_c = _edge_sign(w_a, b, c), _edge_sign(w_b, c, a), _edge_sign(w_c, a, b)
        inside2d = (s_a == s_b) & (s_b == s_c)
        depth = (w_a * tri_w[t_idx, 0] + w_b * tri_w[t_idx, 1] + w_c * tri_w[t_idx, 2]) / area2[t_idx]
        hit = inside2d & (depth > points[p_idx, axis])
        odd[begin:end] = (np.bincount(p_idx[hit] - begin, minlength=end - begin) % 2).astype(bool)
    return odd


def contains(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inside test of ``points`` [N, 3] against the closed mesh (vertices, faces): bool [N].

    A majority vote of ray parity along +x, +y and +z. An empty mesh contains nothing.
    """
    points = np.asarray(points, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [N, 3], got shape {points.shape}")
    if len(faces) == 0 or len(points) == 0:
        return np.zeros(len(points), dtype=bool)
    triangles = np.asarray(vertices, dtype=np.float64)[faces]
    votes = sum(_parity_along(triangles, points, axis).astype(np.int8) for axis in range(3))
    return votes >= 2
