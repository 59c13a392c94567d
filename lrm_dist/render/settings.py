"""The settings hash: one short digest of everything that changes the pixels of a render.

Resume compares it per asset: a done asset with the same hash is skipped, a different hash re-renders.
The code's own constants are in too (the lighting presets' fixed shape and ``RENDER_CODE_VERSION``).
Fan-out settings (actors, timeouts, retries, the Cycles device) are left out, since they do not change
what is rendered; upscaling settings are in when upscaling is on, since it changes the rgba images.
"""

from __future__ import annotations

import hashlib
import json

from lrm_dist.render import lighting
from lrm_dist.render.config import RenderConfig
from lrm_dist.schema import SCHEMA_VERSION

# Bump when the scene, camera or lighting code changes the pixels of a render for the same settings.
RENDER_CODE_VERSION = 1

_NOT_CONTENT = {"actors", "timeout_s", "retries", "cycles_device", "limit"}
_UPSCALE_CONTENT = ("model", "outscale", "alpha", "tile", "tile_pad", "pre_pad")


def render_settings(cfg: RenderConfig, upscale=None) -> dict:
    """The content-defining settings as a JSON-able dict (what the hash covers)."""
    settings = {
        "schema_version": SCHEMA_VERSION, "render_code": RENDER_CODE_VERSION,
        "render": cfg.model_dump(mode="json", exclude=_NOT_CONTENT),
        "lighting_presets": json.loads(json.dumps({"area_rig": lighting.AREA_RIG, "sun": lighting.SUN})),
    }
    if upscale is not None and getattr(upscale, "enabled", False):
        settings["upscale"] = {k: getattr(upscale, k) for k in _UPSCALE_CONTENT if hasattr(upscale, k)}
    return settings


def settings_hash(cfg: RenderConfig, upscale=None) -> str:
    """16 hex digits of sha256 over the canonical JSON of ``render_settings``."""
    blob = json.dumps(render_settings(cfg, upscale), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
