"""Fake rendered samples (no Blender), shared by the shard tests."""

import numpy as np

from lrm_dist.shards.sample import encode_sample


def fake_sample(asset_id: str, settings_hash: str = "h1", views: int = 2, res: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 3.0, (views, res, res)).astype(np.float32)
    depth[:, 0, :] = 0.0  # background row
    normal = rng.normal(size=(views, res, res, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    rgba = rng.integers(0, 256, (views, res, res, 4), dtype=np.uint8)
    c2w = np.tile(np.eye(4), (views, 1, 1))
    c2w[:, :3, 3] = rng.normal(size=(views, 3))
    intr = np.tile([10.0, 10.0, res / 2, res / 2, res, res], (views, 1))
    meta = {"asset_id": asset_id, "category": "chair", "settings_hash": settings_hash, "n_views": views,
            "resolution": res, "depth_scale": 1e-4, "renderer": {"blender": "test", "engine": "CYCLES"},
            "upscaled": False}
    return {"asset_id": asset_id, "category": "chair", "rgba": rgba, "depth": depth, "normal": normal,
            "c2w": c2w, "intrinsics": intr, "meta": meta}


def members(asset_id: str, settings_hash: str = "h1", seed: int = 0) -> dict[str, bytes]:
    return encode_sample(fake_sample(asset_id, settings_hash, seed=seed))
