"""SYNTHETIC shard samples for the eval tests: views of a mesh drawn by the report's numpy rasteriser
(stand-ins for Blender renders), written by the real shard store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrm_dist.assets import read_asset_manifest
from lrm_dist.eval.raster import rasterize, render_mesh
from lrm_dist.geometry.cameras import intrinsics_from_fov, look_at_c2w, orbit_position
from lrm_dist.shards import ShardStore, done_row, encode_sample

RES = 64
VIEWS = 2


def synthetic_views(vertices, faces, asset_id: str, category: str, settings_hash: str) -> dict:
    """A decoded shard sample of a mesh: frontal view 0 plus one orbit view, rasterised (no Blender)."""
    c2w = np.stack([look_at_c2w(orbit_position(2.6, az, el)) for az, el in ((0.0, 0.0), (60.0, 20.0))])
    k = np.tile(intrinsics_from_fov(47.5, RES, RES), (VIEWS, 1))
    rgba = np.zeros((VIEWS, RES, RES, 4), np.uint8)
    for v in range(VIEWS):
        rgba[v, ..., :3] = render_mesh(vertices, faces, c2w[v], k[v], RES, color=(0.6, 0.45, 0.3))
        rgba[v, ..., 3] = np.where(rasterize(vertices, faces, c2w[v], k[v], RES) >= 0, 255, 0)
    depth = np.where(rgba[..., 3] > 0, 2.0, 0.0).astype(np.float32)
    normal = np.zeros((VIEWS, RES, RES, 3), np.float32)
    normal[..., 2] = 1.0
    meta = {"asset_id": asset_id, "category": category, "settings_hash": settings_hash, "n_views": VIEWS,
            "resolution": RES, "depth_scale": 1e-3, "renderer": {"blender": "none", "engine": "SYNTHETIC"},
            "upscaled": False}
    return {"asset_id": asset_id, "category": category, "rgba": rgba, "depth": depth, "normal": normal,
            "c2w": c2w, "intrinsics": k, "meta": meta}


def write_synthetic_renders(workdir: Path, settings_hash: str = "synthetic-1", max_samples: int = 2) -> list[dict]:
    """Render every ok asset of ``workdir``'s manifest into shards under ``workdir/render``; returns the asset rows."""
    import trimesh

    from lrm_dist.shards.config import ShardsConfig

    assets = read_asset_manifest(workdir / "assets" / "assets.parquet", only_ok=True).to_pylist()
    store = ShardStore(str(workdir / "render"), ShardsConfig(max_samples=max_samples))
    store.open()
    for a in assets:
        mesh = trimesh.load(a["mesh_path"], force="mesh", process=False)
        sample = synthetic_views(mesh.vertices, mesh.faces, a["asset_id"], a["category"], settings_hash)
        store.add(a["asset_id"], encode_sample(sample), done_row(a["asset_id"], settings_hash, None, VIEWS))
    store.close()
    return assets
