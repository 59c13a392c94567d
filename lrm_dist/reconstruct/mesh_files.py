"""Meshes as files: GLB (written directly), OBJ and PLY, in each format's up axis.

Writes what ``lrm_dist.reconstruct.Reconstructor`` extracts (``reconstruct.extract``), for eval, infer and serve.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import trimesh

from lrm_dist.geometry.frame import Y_UP_TO_Z_UP

__all__ = ["UP_AXIS_BY_FORMAT", "export_mesh", "glb_bytes", "mesh_bytes"]

UP_AXIS_BY_FORMAT = {"glb": "y", "obj": "y", "ply": "z"}
"""glTF and OBJ are written y-up (their convention; ``geometry.frame`` reads them back z-up), PLY z-up."""


def _in_file_axes(mesh: trimesh.Trimesh, fmt: str) -> trimesh.Trimesh:
    if fmt not in UP_AXIS_BY_FORMAT:
        raise ValueError(f"unsupported mesh format {fmt!r} (expected one of {', '.join(UP_AXIS_BY_FORMAT)})")
    if UP_AXIS_BY_FORMAT[fmt] == "z":
        return mesh
    out = mesh.copy()
    out.apply_transform(np.linalg.inv(Y_UP_TO_Z_UP))
    return out


def glb_bytes(verts: np.ndarray, faces: np.ndarray, colours: np.ndarray) -> bytes:
    """A binary glTF 2.0 file of one triangle mesh with RGBA8 vertex colours, written directly (fast).

    verts [V, 3] float32 (already in the file's y-up axes), faces [F, 3], colours [V, 4] uint8.
    """
    pos = np.ascontiguousarray(verts, dtype="<f4")
    col = np.ascontiguousarray(colours, dtype=np.uint8)
    idx = np.ascontiguousarray(faces, dtype="<u4")
    blobs = [pos.tobytes(), col.tobytes(), idx.tobytes()]  # each a multiple of 4 bytes
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    doc = {
        "asset": {"version": "2.0", "generator": "lrm-dist"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "COLOR_0": 1}, "indices": 2, "mode": 4}]}],
        "buffers": [{"byteLength": int(offsets[-1])}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": int(offsets[i]), "byteLength": len(blobs[i]), "target": target}
            for i, target in enumerate((34962, 34962, 34963))
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(pos), "type": "VEC3",
             "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
            {"bufferView": 1, "componentType": 5121, "normalized": True, "count": len(col), "type": "VEC4"},
            {"bufferView": 2, "componentType": 5125, "count": idx.size, "type": "SCALAR"},
        ],
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = b"".join(blobs)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(text), b"JSON"), text,
        struct.pack("<I4s", len(binary), b"BIN\0"), binary,
    ])


def mesh_bytes(mesh: trimesh.Trimesh, fmt: str = "glb") -> bytes:
    """The encoded ``fmt`` file of a canonical (z-up) mesh: glb/obj turned y-up (their convention), ply z-up."""
    if fmt == "glb":  # written directly: no trimesh copy or exporter pass over millions of faces
        verts = np.asarray(mesh.vertices, dtype=np.float32) @ np.linalg.inv(Y_UP_TO_Z_UP)[:3, :3].T.astype(np.float32)
        return glb_bytes(verts, mesh.faces, mesh.visual.vertex_colors)
    data = _in_file_axes(mesh, fmt).export(file_type=fmt)
    return data if isinstance(data, bytes) else data.encode()


def export_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write a canonical mesh to ``path``; the suffix (.glb, .obj, .ply) picks the format (see ``mesh_bytes``)."""
    path = Path(path)
    data = mesh_bytes(mesh, path.suffix.lower().lstrip("."))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
