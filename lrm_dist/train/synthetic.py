"""SYNTHETIC training shards for tests and benchmarks: drawn views (not renders), written by the real shard writer.

Each asset is a coloured disc whose colour and offset depend on the view, with cameras on an orbit
(``geometry.cameras``); depth/normal members are placeholders. Meant for tests and data-loading
benchmarks where Blender renders are too slow or not available; never for a reported training result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrm_dist.geometry.cameras import intrinsics_from_fov, look_at_c2w, orbit_position
from lrm_dist.shards.sample import encode_sample
from lrm_dist.shards.writer import ShardBuilder, shard_name


def synthetic_asset(asset_id: str, n_views: int, res: int, seed: int) -> dict:
    """One fake rendered asset in the shard sample contract's decoded form."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res] + 0.5
    rgba = np.zeros((n_views, res, res, 4), np.uint8)
    c2w = np.zeros((n_views, 4, 4))
    for v in range(n_views):
        c2w[v] = look_at_c2w(orbit_position(2.0, 360.0 * v / n_views, 20.0 * rng.uniform(-1, 1)))
        cy, cx = res / 2 + rng.uniform(-3, 3, size=2)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.3 * res) ** 2
        colour = rng.integers(40, 255, size=3)
        rgba[v, inside, :3] = colour
        rgba[v, inside, 3] = 255
    depth = np.where(rgba[..., 3] > 0, 1.5, 0.0).astype(np.float32)
    normal = np.zeros((n_views, res, res, 3), np.float32)
    normal[..., 2] = 1.0
    intr = np.tile(intrinsics_from_fov(40.0, res, res), (n_views, 1))
    meta = {
        "asset_id": asset_id, "category": "chair", "settings_hash": "synthetic", "n_views": n_views,
        "resolution": res, "depth_scale": 1e-3, "renderer": {"blender": "none", "engine": "SYNTHETIC"},
        "upscaled": False,
    }
    return {"asset_id": asset_id, "rgba": rgba, "depth": depth, "normal": normal, "c2w": c2w, "intrinsics": intr, "meta": meta}


def write_synthetic_shards(out_dir: Path, n_shards: int, per_shard: int, n_views: int = 6, res: int = 32) -> list[Path]:
    """Write ``n_shards`` shard tars of ``per_shard`` synthetic assets each; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        builder = ShardBuilder()
        for i in range(per_shard):
            asset_id = f"synthetic-{s:02d}-{i:03d}"
            builder.add(asset_id, encode_sample(synthetic_asset(asset_id, n_views, res, seed=s * 1000 + i)), "synthetic")
        path = out_dir / shard_name(s)
        builder.build(path, path.name)
        builder.discard()
        paths.append(path)
    return paths
