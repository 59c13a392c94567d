"""Ground-truth occupancy of a mesh on a regular grid over the [-1, 1]^3 box, stored as packed bits.

A shard sample carries it as the ``occupancy.npz`` member (``encode_grid`` / ``decode_grid``: no
pickle, only uint8 and int arrays), computed once per asset from the canonical ground-truth mesh.
Grid cell ``(i, j, k)`` has its centre at ``-1 + (i + 0.5) * 2 / R`` along x (y, z likewise). The
inside test is ``geometry.inside.contains`` (ray parity along three axes with a majority vote), so a
mesh with a small hole still gets sensible labels. Training draws points at the surface
(``surface_points``: centres of cells with a differently labelled neighbour, exact labels) and
anywhere in its own frame's box (``lookup``: the label of the cell a point falls in).
"""

from __future__ import annotations

import io

import numpy as np

from lrm_dist.geometry.inside import contains

OCCUPANCY_VERSION = 1
BOX_HALF = 1.0
_MAX_NPZ_BYTES = (512**3 + 7) // 8 + 64 * 1024  # the bits of the largest grid decoded, plus npy headers


def cell_centres(resolution: int, half: float = BOX_HALF) -> np.ndarray:
    """Centres of the R^3 cells of [-half, half]^3, shape [R, R, R, 3] (index order x, y, z)."""
    axis = -half + (np.arange(resolution) + 0.5) * (2 * half / resolution)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)


def occupancy_grid(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """Inside/outside of every cell centre of the box against the mesh: bool [R, R, R]."""
    if resolution < 2:
        raise ValueError(f"occupancy resolution must be >= 2, got {resolution}")
    points = cell_centres(resolution).reshape(-1, 3)
    return contains(vertices, faces, points).reshape(resolution, resolution, resolution)


def encode_grid(grid: np.ndarray) -> bytes:
    """bool [R, R, R] -> compressed npz bytes (``bits``: packed uint8, ``resolution``, ``version``)."""
    grid = np.asarray(grid, dtype=bool)
    r = grid.shape[0]
    if grid.shape != (r, r, r):
        raise ValueError(f"occupancy grid must be cubic, got shape {grid.shape}")
    buf = io.BytesIO()
    np.savez_compressed(buf, bits=np.packbits(grid.reshape(-1)), resolution=np.int64(r),
                        version=np.int64(OCCUPANCY_VERSION))
    return buf.getvalue()


def decode_grid(data: bytes, source: str = "occupancy member") -> np.ndarray:
    """Inverse of ``encode_grid`` (never unpickles): bool [R, R, R]; a malformed member raises ValueError."""
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            unpacked = sum(info.file_size for info in npz.zip.infolist())
            if unpacked > _MAX_NPZ_BYTES:  # checked on the zip directory, before anything is inflated
                raise ValueError(f"{unpacked} bytes unpacked, over the {_MAX_NPZ_BYTES} byte limit")
            r, version, bits = int(npz["resolution"]), int(npz["version"]), npz["bits"]
    except Exception as exc:  # zip, npy or key errors: all mean the same to the caller
        raise ValueError(f"{source}: not a readable occupancy grid ({type(exc).__name__}: {exc})") from None
    if version != OCCUPANCY_VERSION or not 2 <= r <= 512 or bits.dtype != np.uint8 or bits.size != (r**3 + 7) // 8:
        raise ValueError(f"{source}: occupancy grid version {version}, resolution {r}, {bits.size} bytes is not valid")
    return np.unpackbits(bits, count=r**3).astype(bool).reshape(r, r, r)


def surface_cells(grid: np.ndarray) -> np.ndarray:
    """Cells whose label differs from one of their 6 neighbours: bool [R, R, R]."""
    g = np.asarray(grid, dtype=bool)
    edge = np.zeros_like(g)
    for axis in range(3):
        diff = np.diff(g, axis=axis)
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        edge[tuple(lo)] |= diff
        edge[tuple(hi)] |= diff
    return edge


def lookup(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Label of the cell holding each point [P, 3] (nearest cell centre); points outside the box are outside."""
    r = grid.shape[0]
    points = np.asarray(points, dtype=np.float64)
    ijk = np.floor((points + BOX_HALF) * (r / (2 * BOX_HALF))).astype(np.int64)
    inside_box = np.all((ijk >= 0) & (ijk < r), axis=-1)
    ijk = np.clip(ijk, 0, r - 1)
    return grid[ijk[:, 0], ijk[:, 1], ijk[:, 2]] & inside_box


def surface_points(grid: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` cell centres drawn from the cells at the surface, with their labels: ([n, 3] float32, [n] bool)."""
    r = grid.shape[0]
    near = np.flatnonzero(surface_cells(grid).reshape(-1))
    if n == 0 or len(near) == 0:
        return np.zeros((0, 3), np.float32), np.zeros(0, bool)
    idx = near[rng.integers(0, len(near), n)]
    ijk = np.stack(np.unravel_index(idx, (r, r, r)), axis=-1)
    points = -BOX_HALF + (ijk + 0.5) * (2 * BOX_HALF / r)
    return points.astype(np.float32), grid.reshape(-1)[idx]


def surface_layers(
    grid: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, side: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planar depth of the first and the last inside cell along each pixel of a ``side`` x ``side`` image.

    What one view leaves open is how far each part goes on behind its visible surface: these two
    layers, the occupancy of "everything between the first and the last surface", score nearly the
    exact shape (docs/train.md, single-view bounds). Computed by splatting: every inside cell at the
    surface is sampled k^3 times over its extent (k = 1-4: at least one sample per pixel the nearest
    cell covers) and projected through the camera (c2w OpenGL, pixel intrinsics of the full
    image, object frame); each pixel keeps the nearest and farthest depth.
    Returns (first, last) float32 [side, side] and hit bool [side, side] (first = last = 0 where no
    inside cell projects).
    """
    g = np.asarray(grid, dtype=bool)
    r = g.shape[0]
    first = np.zeros((side, side), np.float32)
    last = np.zeros((side, side), np.float32)
    ijk = np.argwhere(g & surface_cells(g))
    if len(ijk) == 0:
        return first, last, np.zeros((side, side), bool)
    cell = 2 * BOX_HALF / r
    fx, fy, cx, cy, w, h = np.asarray(intrinsics, dtype=np.float64)[:6]
    centres = -BOX_HALF + (ijk + 0.5) * cell
    nearest = max(float(np.min(-((centres - c2w[:3, 3]) @ c2w[:3, 2]))), 1e-3)  # depth along the camera's -z
    cell_pixels = cell * max(fx * side / w, fy * side / h) / nearest
    splats = int(np.clip(np.ceil(cell_pixels), 1, 4))
    offsets = (np.arange(splats) + 0.5) / splats - 0.5
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3) * cell
    # world -> OpenGL camera (row vectors: R^T (p - t)), of each centre once and each splat offset once
    local = (((centres - c2w[:3, 3]) @ c2w[:3, :3])[:, None, :] + (sub @ c2w[:3, :3])[None]).reshape(-1, 3)
    depth = -local[:, 2]
    front = depth > 1e-6
    safe = np.where(front, depth, 1.0)
    col = np.floor((cx + fx * local[:, 0] / safe) * (side / w)).astype(np.int64)
    row = np.floor((cy - fy * local[:, 1] / safe) * (side / h)).astype(np.int64)
    keep = front & (col >= 0) & (col < side) & (row >= 0) & (row < side)
    flat, depth = row[keep] * side + col[keep], depth[keep]
    near = np.full(side * side, np.inf)
    far = np.full(side * side, -np.inf)
    np.minimum.at(near, flat, depth)
    np.maximum.at(far, flat, depth)
    hit = np.isfinite(near)
    first.reshape(-1)[hit] = near[hit]
    last.reshape(-1)[hit] = far[hit]
    return first, last, hit.reshape(side, side)
