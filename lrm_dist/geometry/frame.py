"""The canonical object frame every stage agrees on, and the one conversion to the evaluation cube.

Canonical frame (OpenLRM's): right-handed, **z up**, the object's front facing **-y** (so view 0, a
camera at (0, -d, 0) looking at the origin, sees the front), the axis-aligned bounding box centred
at the origin and its longest side scaled to ``2 * CANONICAL_HALF_EXTENT``, inside the [-1, 1]^3
box the NeRF renders. glTF/OBJ files are y-up and are turned z-up on load (x, y, z) -> (x, -z, y),
exactly as Blender's importers do, so meshes loaded here and objects imported in Blender agree.

Evaluation frame (Occupancy Networks): same axes, longest side 1, i.e. the unit cube [-0.5, 0.5]^3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

CANONICAL_HALF_EXTENT = 0.9
"""Half of the longest bounding-box side in the canonical frame (a margin inside [-1, 1]^3)."""

Y_UP_TO_Z_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
"""Rotation of +90 degrees about x: the y-up glTF/OBJ frame into Blender's and ours (z up)."""

UP_AXIS_BY_SUFFIX = {".glb": "y", ".gltf": "y", ".obj": "y", ".ply": "z", ".stl": "z"}
"""Each format's usual up axis (Blender's importers' defaults)."""


@dataclass(frozen=True)
class Normalization:
    """canonical = (z_up_point - center) * scale, where z_up_point is the file's point turned z-up."""

    center: tuple[float, float, float]
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.center)) * self.scale

    def matrix(self) -> np.ndarray:
        """The same map as a 4x4 matrix acting on z-up points."""
        m = np.eye(4)
        m[:3, :3] *= self.scale
        m[:3, 3] = -np.asarray(self.center) * self.scale
        return m


def normalization_for(bounds: np.ndarray) -> Normalization:
    """The normalisation that centres ``bounds`` (2x3, z-up) and fits its longest side."""
    bounds = np.asarray(bounds, dtype=np.float64)
    extent = float((bounds[1] - bounds[0]).max())
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError(f"degenerate bounds {bounds.tolist()}: cannot normalise")
    center = (bounds[0] + bounds[1]) / 2
    return Normalization(tuple(float(c) for c in center), 2 * CANONICAL_HALF_EXTENT / extent)


def to_z_up(mesh: trimesh.Trimesh, up_axis: str) -> trimesh.Trimesh:
    """Return ``mesh`` turned into the z-up frame (a copy when a rotation is needed)."""
    if up_axis == "z":
        return mesh
    if up_axis != "y":
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    out = mesh.copy()
    out.apply_transform(Y_UP_TO_Z_UP)
    return out


def normalize_mesh(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, Normalization]:
    """Normalise a z-up mesh into the canonical frame; returns the new mesh and the map used."""
    norm = normalization_for(mesh.bounds)
    out = mesh.copy()
    out.apply_transform(norm.matrix())
    return out, norm


def canonical_to_eval(points: np.ndarray) -> np.ndarray:
    """Canonical frame -> the evaluation's unit cube (longest side 1)."""
    return np.asarray(points) / (2 * CANONICAL_HALF_EXTENT)
