"""The one Reconstructor: its defaults rule, and eval and serve getting the same mesh through it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from lrm_dist.config import load_config
from lrm_dist.model.config import LRMConfig
from lrm_dist.reconstruct import MeshSettings, mesh_settings


def test_mesh_settings_is_the_one_defaults_rule():
    serve = load_config(None, []).serve
    assert mesh_settings(serve) == MeshSettings("marching_cubes", serve.mesh_resolution, None, "serve.density_threshold",
                                                serve.grid_chunk)
    # no threshold set anywhere: the model's calibrated iso-level, else OpenLRM's 3.0
    assert mesh_settings(serve, model_config=LRMConfig(iso_level=1.5)).threshold == 1.5
    assert mesh_settings(serve, model_config=LRMConfig()).threshold == 3.0
    # serve's own settings win over the model's
    cfg = load_config(None, ["serve.density_threshold=5", "serve.mesher=surface_nets", "serve.mesh_resolution=64"])
    assert mesh_settings(cfg.serve, model_config=LRMConfig(iso_level=1.5)) == MeshSettings(
        "surface_nets", 64, 5.0, "serve.density_threshold", cfg.serve.grid_chunk)
    # eval falls back to serve's settings, naming its own key in a "no surface" error ...
    assert mesh_settings(cfg.serve, cfg.eval, LRMConfig(iso_level=1.5)) == MeshSettings(
        "surface_nets", 64, 5.0, "eval.density_threshold", cfg.serve.grid_chunk)
    assert mesh_settings(serve, load_config(None, []).eval, LRMConfig(iso_level=1.5)).threshold == 1.5
    # ... and each eval setting that is set wins
    own = load_config(None, ["serve.density_threshold=5", "eval.density_threshold=2", "eval.mesher=marching_cubes",
                             "eval.mesh_resolution=32", "serve.mesher=surface_nets"])
    got = mesh_settings(own.serve, own.eval, LRMConfig(iso_level=1.5))
    assert (got.mesher, got.resolution, got.threshold) == ("marching_cubes", 32, 2.0)
    # smoothing: serve's passes, unless eval sets its own (0 included)
    assert mesh_settings(serve).smoothing == 0
    smooth = load_config(None, ["serve.mesh_smoothing=4"])
    assert mesh_settings(smooth.serve).smoothing == 4
    assert mesh_settings(smooth.serve, smooth.eval).smoothing == 4
    assert mesh_settings(smooth.serve, load_config(None, ["eval.mesh_smoothing=0"]).eval).smoothing == 0


def test_mesh_smoothing_is_hashed_only_when_set():
    """Evaluations made before the setting keep their hash; smoothing changes it."""
    from lrm_dist.eval.stage import eval_hash, resolved_settings

    plain = resolved_settings(load_config(None, []))
    assert "mesh_smoothing" not in plain
    smoothed = resolved_settings(load_config(None, ["eval.mesh_smoothing=3"]))
    assert smoothed["mesh_smoothing"] == 3
    assert eval_hash("d", plain) != eval_hash("d", smoothed)
    assert resolved_settings(load_config(None, ["serve.mesh_smoothing=3"]))["mesh_smoothing"] == 3


@pytest.mark.parametrize("overrides", [[], ["serve.density_threshold=5", "eval.mesh_resolution=32"],
                                       ["eval.mesher=surface_nets", "eval.density_threshold=2"]])
def test_eval_settings_are_unchanged_by_the_rule(overrides):
    """The eval hash's settings are what they were before the rule moved (eval's value, else serve's)."""
    from lrm_dist.eval.stage import resolved_settings

    cfg = load_config(None, overrides)
    e, s = cfg.eval, cfg.serve
    got = resolved_settings(cfg)
    assert (got["mesh_resolution"], got["mesher"], got["density_threshold"]) == (
        e.mesh_resolution or s.mesh_resolution, e.mesher or s.mesher, e.density_threshold or s.density_threshold)
    with_model = resolved_settings(cfg, LRMConfig(iso_level=1.25))
    assert with_model["density_threshold"] == (e.density_threshold or s.density_threshold or 1.25)


def _png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mesher,smoothing", [("marching_cubes", 0), ("surface_nets", 0), ("marching_cubes", 3)])
def test_eval_and_serve_make_the_same_mesh_of_the_same_image_and_camera(tmp_path, mesher, smoothing):
    """Eval's actor and serving's pipeline, given one model, image and source camera, both reconstruct
    through the Reconstructor at the same (default-rule) settings: the same vertices, faces and colours
    (smoothed alike when serve.mesh_smoothing is set)."""
    from lrm_dist.eval.stage import resolved_settings
    from lrm_dist.eval.reconstruct import prepare_input
    from lrm_dist.eval.workers import ReconstructActor
    from lrm_dist.geometry.cameras import look_at_c2w, orbit_position
    from lrm_dist.model.config import SIZES
    from lrm_dist.model.lrm import LRM
    from lrm_dist.model.pretrained import from_pretrained, save_pretrained
    from lrm_dist.reconstruct.extract import density_grid
    from lrm_dist.serve.infer import ImageToMesh, source_camera_features

    torch.manual_seed(0)
    checkpoint = save_pretrained(LRM(SIZES["tiny"]), tmp_path / "model")
    model = from_pretrained(checkpoint).eval()
    rgba = np.zeros((56, 56, 4), np.uint8)
    rgba[10:40, 12:44] = (30, 160, 90, 255)
    distance, focal = 2.0, 0.75  # serving's framing of this model (no trained framing in its config)
    c2w = look_at_c2w(orbit_position(distance, 0.0, 0.0))[None]
    k = np.array([[focal, focal, 0.5, 0.5, 1.0, 1.0]])
    prepared = prepare_input(rgba, c2w, k, model.source_size, 0, None)
    np.testing.assert_array_equal(prepared.camera, source_camera_features(distance, focal)[0].numpy())
    with torch.no_grad():
        planes = model.forward_planes(torch.from_numpy(prepared.image)[None], torch.from_numpy(prepared.camera)[None])
        level = float(density_grid(model.synthesizer, planes[0], 20).median())

    cfg = load_config(None, [f"serve.density_threshold={level}", "serve.mesh_resolution=20", f"serve.mesher={mesher}",
                             "serve.device=cpu", f"serve.mesh_smoothing={smoothing}"])
    settings = resolved_settings(cfg, model.config)
    actor = ReconstructActor(str(checkpoint), settings["mesh_resolution"], settings["density_threshold"], None,
                             mesher=settings["mesher"], smoothing=settings.get("mesh_smoothing", 0))
    batch = {"asset_id": np.array(["a"], dtype=object), "category": np.array(["chair"], dtype=object),
             "mesh_path": np.array(["gt.obj"], dtype=object), "render_settings_hash": np.array(["s"], dtype=object),
             "input_view": np.array([0]), "rgba_png": np.array([_png(rgba)], dtype=object),
             "input_c2w": [c2w[0].reshape(-1).tolist()], "input_intrinsics": [k[0].tolist()],
             "error": np.array([""], dtype=object)}
    row = actor(batch)
    assert row["error"][0] == "" and row["empty_reason"][0] == ""
    eval_verts = np.frombuffer(row["pred_vertices"][0], np.float32).reshape(-1, 3)
    eval_faces = np.frombuffer(row["pred_faces"][0], np.int64).reshape(-1, 3)
    eval_colours = np.frombuffer(row["pred_colors"][0], np.uint8).reshape(-1, 4)

    pipeline = ImageToMesh(from_pretrained(checkpoint), cfg.serve)
    assert (pipeline.recon.settings.mesher, pipeline.recon.settings.resolution, pipeline.density_threshold) == (
        mesher, 20, level)
    served = pipeline.reconstruct(prepared.image, "image").mesh
    assert len(eval_faces) > 0
    np.testing.assert_array_equal(np.asarray(served.vertices, np.float32), eval_verts)
    np.testing.assert_array_equal(np.asarray(served.faces), eval_faces)
    np.testing.assert_array_equal(np.asarray(served.visual.vertex_colors), eval_colours)
    if smoothing:  # the same faces as the unsmoothed mesh, its vertices moved
        plain, _ = pipeline.recon.with_settings(smoothing=0).extract(pipeline.recon.planes(prepared.image[None],
                                                                                           prepared.camera[None])[0])
        np.testing.assert_array_equal(np.asarray(plain.faces), eval_faces)
        assert np.abs(np.asarray(plain.vertices) - eval_verts).max() > 1e-3


def test_grid_passes_are_small_on_a_cpu_unless_the_grid_query_is_compiled():
    from lrm_dist.model.config import SIZES
    from lrm_dist.model.lrm import LRM
    from lrm_dist.reconstruct import Reconstructor
    from lrm_dist.reconstruct.extract import GRID_CHUNK_CUDA

    model = LRM(SIZES["tiny"])
    assert Reconstructor(model, MeshSettings(), "cpu", "fp32")._grid_chunk is None  # density_grid's per-device default
    # torch.compile unrolls the passes into one graph: a compiled query keeps them few
    assert Reconstructor(model, MeshSettings(), "cpu", "fp32", compile=True)._grid_chunk == GRID_CHUNK_CUDA
    assert Reconstructor(model, MeshSettings(grid_chunk=4096), "cpu", "fp32", compile=True)._grid_chunk == 4096
