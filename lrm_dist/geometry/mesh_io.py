"""Reading and checking meshes: every bad input becomes one clear line naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import trimesh

from lrm_dist.geometry.frame import UP_AXIS_BY_SUFFIX

MESH_SUFFIXES = tuple(UP_AXIS_BY_SUFFIX)


class MeshError(ValueError):
    """A mesh file that cannot be used; ``str(err)`` is one line naming the file and the reason."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_mesh(path: str | Path, max_faces: int = 2_000_000, max_file_mb: float = 500.0) -> trimesh.Trimesh:
    """Load any glb/gltf/obj/ply/stl as one triangle mesh (scene transforms applied), checked.

    Raises ``FileNotFoundError`` for a missing file and ``MeshError`` for everything else wrong:
    unsupported format, oversized file, unreadable, empty, non-finite vertices, too many faces.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshError(f"{path}: unsupported mesh format {suffix!r} (expected one of {', '.join(MESH_SUFFIXES)})")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_file_mb:
        raise MeshError(f"{path}: file is {size_mb:.0f} MB, over the {max_file_mb:.0f} MB limit")
    if size_mb == 0:
        raise MeshError(f"{path}: empty file")
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeshError(f"{path}: cannot read mesh: {first}") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(f"{path}: mesh has no triangles")
    if len(loaded.faces) > max_faces:
        raise MeshError(f"{path}: {len(loaded.faces):,} faces, over the {max_faces:,} face limit")
    if not np.isfinite(loaded.vertices).all():
        raise MeshError(f"{path}: mesh has NaN or infinite vertex coordinates")
    extent = loaded.bounds[1] - loaded.bounds[0]
    if float(extent.max()) <= 0:
        raise MeshError(f"{path}: mesh is degenerate (zero-size bounding box)")
    return loaded
