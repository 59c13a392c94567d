"""One Blender per process: renders an asset record into the arrays of one shard sample.

``BlenderRenderer`` imports bpy on construction (never at module import), resets Blender before
every asset and writes its per-view files only to a private local temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time

import numpy as np

from lrm_dist.geometry.limits import MAX_FILE_MB
from lrm_dist.log import get_logger
from lrm_dist.render import scene as S
from lrm_dist.render.cameras import sample_cameras, sample_orbits
from lrm_dist.render.config import RenderConfig
from lrm_dist.render.inputs import stage_asset
from lrm_dist.render.lighting import list_hdris, sample_lighting
from lrm_dist.scratch import process_folder, remove_orphan_folders

log = get_logger(__name__)


def bundled_hdri_dir(bpy) -> str | None:
    """Blender's own studio-light environment maps (``datafiles/studiolights/world``), if shipped."""
    try:
        path = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
    except (AttributeError, TypeError, ValueError):
        return None
    return path if path and os.path.isdir(path) else None


@contextlib.contextmanager
def quiet_stdout():
    """Silence Blender's per-render chatter on file descriptor 1 (it bypasses Python's sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


SCRATCH_PREFIX = "lrm-render-"
"""A render worker's scratch folders (``lrm_dist.scratch``): an actor killed on timeout or recycling
never cleans up itself, so the next renderer on the node removes them."""


class BlenderRenderer:
    """Renders asset records with one in-process Blender; ``threads`` is Blender's CPU thread count."""

    def __init__(self, cfg: RenderConfig, settings_hash: str, threads: int = 1, max_file_mb: float = MAX_FILE_MB):
        import bpy  # lazy: only render workers need Blender

        self.bpy = bpy
        self.cfg = cfg
        self.settings_hash = settings_hash
        self.threads, self.max_file_mb = threads, max_file_mb
        remove_orphan_folders(SCRATCH_PREFIX)
        self.tmp = process_folder(SCRATCH_PREFIX)
        self.hdris = list_hdris(cfg.lighting.hdri_dir or bundled_hdri_dir(bpy))
        self.device = "-"
        self.version = bpy.app.version_string

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _setup(self, record: dict) -> tuple[object, dict]:
        bpy, cfg = self.bpy, self.cfg
        path = stage_asset(record["uri"], self.tmp / "asset", self.max_file_mb)
        S.reset_scene(bpy)
        meshes = S.import_asset(bpy, path, record.get("up_axis"))
        S.normalize_objects(bpy, list(record["norm_center"]), float(record["norm_scale"]))
        S.wire_vertex_colors(bpy, meshes)
        lighting = sample_lighting(cfg.lighting, record["asset_id"], self.hdris)
        S.apply_lighting(bpy, lighting)
        device = S.configure_render(bpy, cfg, self.threads, cfg.cycles_device, self.tmp)
        if device != self.device:
            log.info("Blender %s: engine %s on device %s (%d threads)", self.version, cfg.engine, device, self.threads)
            self.device = device
        return S.add_camera(bpy), lighting

    def _render_view(self, cam, c2w: np.ndarray, fov: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from PIL import Image

        bpy = self.bpy
        S.set_camera(cam, c2w, fov)
        rgba_path = self.tmp / "rgba.png"
        bpy.context.scene.render.filepath = str(rgba_path)
        bpy.ops.render.render(write_still=True)
        with Image.open(rgba_path) as im:
            rgba = np.asarray(im.convert("RGBA")).copy()
        depth = S.read_float_image(bpy, self.tmp / f"{S.PASS_PREFIX}{S.DEPTH_ITEM}.exr")[..., 0]
        depth = np.where(depth < 1e9, depth, 0.0).astype(np.float32)  # Cycles' background depth is 1e10
        normal_path = self.tmp / f"{S.PASS_PREFIX}{S.NORMAL_ITEM}.exr"
        if normal_path.exists():
            normal = S.read_float_image(bpy, normal_path)[..., :3]
            length = np.linalg.norm(normal, axis=-1, keepdims=True)
            normal = np.where(length > 1e-6, normal / np.maximum(length, 1e-6), 0.0).astype(np.float32)
        else:
            normal = np.zeros(depth.shape + (3,), dtype=np.float32)
        rgba[rgba[..., 3] == 0, :3] = 0  # fully transparent pixels carry no colour
        return rgba, depth, normal

    def render(self, record: dict) -> dict:
        """Render every view of one asset record; returns the sample dict of ``lrm_dist.shards.sample``."""
        cfg = self.cfg
        start = time.perf_counter()
        cam, lighting = self._setup(record)
        c2w, intrinsics = sample_cameras(cfg.cameras, record["asset_id"], cfg.views, cfg.resolution)
        fovs = sample_orbits(cfg.cameras, record["asset_id"], cfg.views)[:, 3]
        views = [self._render_view(cam, c2w[i], float(fovs[i])) for i in range(cfg.views)]
        rgba, depth, normal = (np.stack(v) for v in zip(*views))
        meta = {
            "asset_id": record["asset_id"],
            "category": record["category"],
            "settings_hash": self.settings_hash,
            "n_views": cfg.views,
            "resolution": cfg.resolution,
            "depth_scale": cfg.depth_scale,
            "renderer": {"blender": self.version, "engine": cfg.engine, "device": self.device,
                         "samples": cfg.samples, "denoise": cfg.denoise},
            "has_normal": cfg.engine != "BLENDER_WORKBENCH",
            "upscaled": False,
            "lighting": lighting,
            "render_seconds": round(time.perf_counter() - start, 3),
        }
        return {"asset_id": record["asset_id"], "category": record["category"], "rgba": rgba, "depth": depth,
                "normal": normal, "c2w": c2w, "intrinsics": intrinsics, "meta": meta}
