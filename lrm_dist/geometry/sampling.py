"""Seeded point sampling on and around meshes: surface points with normals, uniform points in a box.

The evaluation's metrics rest on these samples, so the same seed gives the same points on any machine
(numpy's PCG64 generator, area-weighted faces, uniform barycentric coordinates).
"""

from __future__ import annotations

import numpy as np


def face_normals_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals (right-hand winding; zero for degenerate faces) and face areas."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, norm[:, None], out=np.zeros_like(cross), where=norm[:, None] > 0)
    return normals, 0.5 * norm


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly distributed over the surface area, with their faces' unit normals.

    Returns (points [n, 3], normals [n, 3]) as float64. Raises ValueError for a mesh without area.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [F, 3], got shape {faces.shape}")
    normals, areas = face_normals_and_areas(vertices, faces)
    total = float(areas.sum())
    if not np.isfinite(total) or total <= 0:
        raise ValueError("mesh has no surface area to sample")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    cdf = np.cumsum(areas)
    face = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(faces) - 1)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    a, b, c = (vertices[faces[face, k]] for k in range(3))
    points = (1 - s)[:, None] * a + (s * (1 - r2))[:, None] * b + (s * r2)[:, None] * c
    return points, normals[face]


def sample_box(n: int, low: np.ndarray | float, high: np.ndarray | float, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``n`` points uniformly distributed in the axis-aligned box [low, high]^3, float64 [n, 3]."""
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), (3,))
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), (3,))
    if np.any(high <= low):
        raise ValueError(f"box high {high.tolist()} must exceed low {low.tolist()} on every axis")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return low + rng.random((n, 3)) * (high - low)
