"""Seeded per-asset lighting, as plain data (a JSON-able dict) so it is testable and recorded in meta.json.

Presets: ``area_rig`` (2-4 area lights around the object, random power, colour temperature, place
and size), ``sun`` (one sun, random direction), ``hdri`` (an environment map, randomly turned),
each on top of a uniform world ambient. ``lrm_dist.render.scene.apply_lighting`` builds it in Blender.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lrm_dist.geometry.cameras import orbit_position
from lrm_dist.render.cameras import asset_rng
from lrm_dist.render.config import LightingConfig

HDRI_SUFFIXES = (".exr", ".hdr")


# The presets' fixed shape (calibrated once, not user settings); part of the render settings hash,
# so changing one re-renders a resumed run instead of mixing old and new lighting.
AREA_RIG = {"jitter_deg": 30.0, "elevation_deg": (10.0, 70.0), "distance": (3.0, 5.0), "size": (1.0, 3.0)}
SUN = {"distance": 5.0, "elevation_deg": (20.0, 75.0), "angle_deg": (0.5, 10.0)}


def list_hdris(folder: str | Path | None) -> list[str]:
    """Environment maps in ``folder`` (sorted, so a seed picks the same file everywhere); [] when none."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in HDRI_SUFFIXES)


def sample_lighting(cfg: LightingConfig, asset_id: str, hdris: list[str]) -> dict:
    """The lighting of one asset: ``{"preset", "ambient", "lights": [...], "hdri": {...} | None}``."""
    rng = asset_rng(cfg.seed, asset_id, "lighting")
    names = sorted(cfg.presets)
    weights = np.array([cfg.presets[n] for n in names], dtype=np.float64)
    preset = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if preset == "hdri" and not hdris:
        preset = "area_rig"
    spec: dict = {"preset": preset, "ambient": float(rng.uniform(*cfg.ambient)), "lights": [], "hdri": None}
    if preset == "area_rig":
        count = int(rng.integers(cfg.area_lights[0], cfg.area_lights[1] + 1))
        base = rng.uniform(0.0, 360.0)  # rig turned as a whole; lights spread around it
        for i in range(count):
            azimuth = base + 360.0 * i / count + rng.uniform(-AREA_RIG["jitter_deg"], AREA_RIG["jitter_deg"])
            elevation = rng.uniform(*AREA_RIG["elevation_deg"])
            spec["lights"].append({
                "type": "AREA",
                "location": orbit_position(float(rng.uniform(*AREA_RIG["distance"])), azimuth, elevation).tolist(),
                "energy": float(rng.uniform(*cfg.area_energy_w)),
                "temperature": float(rng.uniform(*cfg.temperature_k)),
                "size": float(rng.uniform(*AREA_RIG["size"])),
            })
    elif preset == "sun":
        spec["lights"].append({
            "type": "SUN",
            "location": orbit_position(
                SUN["distance"], float(rng.uniform(0.0, 360.0)), float(rng.uniform(*SUN["elevation_deg"]))
            ).tolist(),
            "energy": float(rng.uniform(*cfg.sun_strength)),
            "temperature": float(rng.uniform(*cfg.temperature_k)),
            "angle_deg": float(rng.uniform(*SUN["angle_deg"])),
        })
    else:
        spec["ambient"] = 0.0
        spec["hdri"] = {
            "path": hdris[int(rng.integers(len(hdris)))],
            "strength": float(rng.uniform(*cfg.hdri_strength)),
            "rotation_deg": float(rng.uniform(0.0, 360.0)),
        }
    return spec


def aim_rotation(location: list[float]) -> tuple[float, float, float]:
    """Euler XYZ (radians) turning a Blender light (which shines down its -z) at the origin from ``location``."""
    x, y, z = location
    pitch = math.atan2(math.hypot(x, y), z)  # angle from +z
    yaw = math.atan2(y, x) + math.pi / 2
    return (pitch, 0.0, yaw)
