"""Fixtures of the eval tests: procedural assets with ground-truth meshes, their SYNTHETIC views in
shards (``eval_helpers``), and a tiny randomly initialised LRM checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from eval_helpers import synthetic_views, write_synthetic_renders
from PIL import Image

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.config import load_config
from lrm_dist.eval.tables import consolidate, summarize, write_summary
from lrm_dist.eval.workers import score_row
from lrm_dist.storage import Storage


@pytest.fixture
def eval_workdir(tmp_path) -> Path:
    """Two procedural chairs and two tables with ground truth, rendered into shards of two samples."""
    workdir = tmp_path / "work"
    cfg = load_config(None, [f"workdir={workdir}"])
    sources = [{"kind": "procedural", "per_category": 2, "categories": ["chair", "table"], "colors": False}]
    cfg = cfg.model_copy(update={"assets": cfg.assets.model_validate({"sources": sources})})
    assert build_assets(cfg).ok == 4
    write_synthetic_renders(workdir)
    return workdir


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    from lrm_dist.model.config import SIZES
    from lrm_dist.model.lrm import LRM
    from lrm_dist.model.pretrained import save_pretrained

    torch.manual_seed(0)
    return save_pretrained(LRM(SIZES["tiny"]), tmp_path / "tiny-model")


SCALES = {"chair": [0.95, 0.7], "table": [0.9, None]}  # None: an empty prediction


def _png(rgba: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def scored_eval(tmp_path, eval_workdir) -> tuple[Path, object]:
    """An eval folder scored by the real row scorer: predictions are shrunk ground truths, one is empty."""
    cfg = load_config(None, [f"workdir={eval_workdir}", "shards.holdout_fraction=0", "eval.n_points=3000", "eval.report.image_size=96"])
    out = str(eval_workdir / "eval")
    settings = {"eval_hash": "h-test", "checkpoint": "test", "thresholds": [0.01, 0.02, 0.05], "n_points": 3000,
                "padding": 0.1, "seed": 0, "save_meshes": True}
    rows = {}
    assets = read_asset_manifest(eval_workdir / "assets" / "assets.parquet", only_ok=True).to_pylist()
    counters = {"chair": 0, "table": 0}
    for a in sorted(assets, key=lambda r: r["asset_id"]):
        scale = SCALES[a["category"]][counters[a["category"]]]
        counters[a["category"]] += 1
        gt = trimesh.load(a["mesh_path"], force="mesh", process=False)
        view = synthetic_views(gt.vertices, gt.faces, a["asset_id"], a["category"], "s")
        verts = (gt.vertices * scale if scale else np.zeros((0, 3))).astype(np.float32)
        faces = gt.faces if scale else np.zeros((0, 3), np.int64)
        row = {"asset_id": a["asset_id"], "category": a["category"], "mesh_path": a["mesh_path"],
               "render_settings_hash": "s", "input_view": 0, "rgba_png": _png(view["rgba"][0]),
               "input_c2w": view["c2w"][0].reshape(-1).tolist(), "input_intrinsics": view["intrinsics"][0].tolist(),
               "error": "", "pred_vertices": verts.tobytes(), "pred_faces": faces.astype(np.int64).tobytes(),
               "pred_colors": np.full((len(verts), 4), 200, np.uint8).tobytes(),
               "empty_reason": "" if scale else "no surface", "seconds_inference": 0.1}
        rows[a["asset_id"]] = score_row(row, out, settings)
    storage = Storage(out)
    consolidate(storage, rows)
    write_summary(storage, summarize(list(rows.values()), "h-test", settings["thresholds"]))
    return eval_workdir / "eval", cfg
