"""Seeded orbit cameras per asset: view 0 frontal, the others spread over the configured sphere band."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from lrm_dist.geometry.cameras import intrinsics_from_fov, look_at_c2w, orbit_position
from lrm_dist.render.config import CameraConfig


def asset_rng(seed: int, asset_id: str, purpose: str) -> np.random.Generator:
    """A generator fixed by (seed, asset id, purpose): reproducible anywhere, independent across assets."""
    digest = hashlib.sha256(f"{seed}/{purpose}/{asset_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sample_orbits(cfg: CameraConfig, asset_id: str, views: int) -> np.ndarray:
    """``[V, 4]`` rows (azimuth_deg, elevation_deg, distance, fov_deg); row 0 is the frontal view.

    Views 1..V-1 take stratified azimuths (one jittered slot each, slots shuffled) and elevations
    uniform in sin(elevation), i.e. uniform over the sphere band's area.
    """
    rng = asset_rng(cfg.seed, asset_id, "cameras")
    out = np.empty((views, 4), dtype=np.float64)
    out[0] = (0.0, 0.0, float(np.mean(cfg.distance)), float(np.mean(cfg.fov_deg)))
    n = views - 1
    if n:
        lo, hi = cfg.azimuth_deg
        slots = (np.arange(n) + rng.uniform(0.0, 1.0, n)) / n
        azimuth = lo + (hi - lo) * rng.permutation(slots)
        s_lo, s_hi = (math.sin(math.radians(e)) for e in cfg.elevation_deg)
        elevation = np.degrees(np.arcsin(rng.uniform(s_lo, s_hi, n)))
        out[1:, 0] = azimuth % 360.0
        out[1:, 1] = elevation
        out[1:, 2] = rng.uniform(*cfg.distance, n)
        out[1:, 3] = rng.uniform(*cfg.fov_deg, n)
    return out


def sample_cameras(cfg: CameraConfig, asset_id: str, views: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cameras of one asset: c2w ``[V, 4, 4]`` (OpenGL/Blender axes) and intrinsics ``[V, 6]`` (pixels)."""
    orbits = sample_orbits(cfg, asset_id, views)
    c2w = np.stack([look_at_c2w(orbit_position(d, az, el)) for az, el, d, _ in orbits])
    intrinsics = np.stack([intrinsics_from_fov(fov, resolution, resolution) for *_, fov in orbits])
    return c2w, intrinsics
