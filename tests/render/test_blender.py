"""Real Blender (in this process): the conventions hold, every format imports, bad inputs fail cleanly."""

import json
import struct

import numpy as np
import pytest
import trimesh

from lrm_dist.assets.stage import process_candidate
from lrm_dist.assets.procedural import generate_furniture, write_procedural_glb
from lrm_dist.assets.sources import Candidate
from lrm_dist.geometry.cameras import backproject_depth
from lrm_dist.geometry.frame import Y_UP_TO_Z_UP
from lrm_dist.render.config import RenderConfig
from lrm_dist.render.fanout import RenderWorker

pytestmark = pytest.mark.integration
pytest.importorskip("bpy")

TINY = {"views": 4, "resolution": 64, "samples": 4, "denoise": False,
        "lighting": {"presets": {"area_rig": 1.0}, "temperature_k": [6500, 6500]}}


@pytest.fixture(scope="module")
def renderer():
    from lrm_dist.render.blender_worker import BlenderRenderer

    r = BlenderRenderer(RenderConfig.model_validate(TINY), "test", threads=1)
    yield r
    r.close()


def _record(tmp_path, name: str, mesh_file, up_axis: str) -> dict:
    candidate = Candidate(name, "local", "chair", str(mesh_file), up_axis)
    row = process_candidate(candidate, str(tmp_path / "gt"), 10**6, 100.0)
    assert row["status"] == "ok", row["reason"]
    return row


def _check_surface(sample: dict, gt_mesh_path: str, views) -> None:
    mesh = trimesh.load(gt_mesh_path, force="mesh")
    for i in views:
        depth, alpha = sample["depth"][i], sample["rgba"][i][..., 3]
        mask = (depth > 0) & (alpha == 255)
        assert mask.sum() > 200, f"view {i}: object barely visible ({mask.sum()} px)"
        pts = backproject_depth(depth, sample["c2w"][i], sample["intrinsics"][i])[mask]
        _, dist, tri = trimesh.proximity.closest_point(mesh, pts)
        assert np.median(dist) < 1e-3 and np.percentile(dist, 99) < 1e-2, (i, np.median(dist), dist.max())
        normals = sample["normal"][i][mask]
        assert np.median(np.abs((normals * mesh.face_normals[tri]).sum(-1))) > 0.99
        to_cam = sample["c2w"][i][:3, 3] - pts
        assert np.mean((normals * to_cam).sum(-1) > 0) > 0.95  # world normals face the camera
        assert (depth[alpha == 0] == 0).all() and (sample["normal"][i][alpha == 0] == 0).all()


def test_depth_backprojects_onto_the_mesh_and_colours_show(tmp_path, renderer):
    glb = tmp_path / "chair.glb"
    write_procedural_glb(generate_furniture("chair", 3, seed=1), glb)
    record = _record(tmp_path, "chair-3", glb, "y")
    s = renderer.render(record)
    assert s["rgba"].shape == (4, 64, 64, 4) and s["rgba"].dtype == np.uint8
    np.testing.assert_allclose(s["c2w"][0][:3, 3], [0, -2.6, 0], atol=1e-9)  # view 0: frontal
    _check_surface(s, record["mesh_path"], range(4))
    assert (s["rgba"][:, 0, 0] == 0).all()  # transparent background
    fg = s["rgba"][s["rgba"][..., 3] == 255][:, :3].astype(int)
    chroma = fg.max(-1) - fg.min(-1)
    assert np.median(chroma) > 25, "vertex colours do not reach the render (white lights, grey result)"


@pytest.mark.parametrize("fmt", ["obj", "ply", "stl"])
def test_other_formats_land_in_the_canonical_frame(tmp_path, renderer, fmt):
    mesh = generate_furniture("table", 2, seed=1, colors=False)  # y-up like the GLBs
    path = tmp_path / f"t.{fmt}"
    if fmt == "obj":
        mesh.export(path)
        up = "y"
    else:
        z_up = mesh.copy()
        z_up.apply_transform(Y_UP_TO_Z_UP)
        z_up.export(path)
        up = "z"
    record = _record(tmp_path, f"t-{fmt}", path, up)
    _check_surface(renderer.render(record), record["mesh_path"], [0, 1])


def _glb_with_external_texture(path):
    doc = {"asset": {"version": "2.0"}, "images": [{"uri": "../../../../etc/shadow.png"}]}
    body = json.dumps(doc).encode()
    body += b" " * (-len(body) % 4)
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(body)) + struct.pack("<II", len(body), 0x4E4F534A) + body)


def _glb_without_its_binary_chunk(path):
    doc = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 1200}],
           "bufferViews": [{"buffer": 0, "byteLength": 1200}],
           "accessors": [{"bufferView": 0, "componentType": 5126, "count": 100, "type": "VEC3",
                          "min": [0, 0, 0], "max": [1, 1, 1]}],
           "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}],
           "scenes": [{"nodes": [0]}], "scene": 0}
    body = json.dumps(doc).encode()
    body += b" " * (-len(body) % 4)
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(body)) + struct.pack("<II", len(body), 0x4E4F534A) + body)


def test_bad_inputs_fail_with_reasons_without_retry(tmp_path):
    worker = RenderWorker(RenderConfig.model_validate(TINY).model_dump(mode="json"), "test", 1, encode=True)
    (tmp_path / "empty.glb").write_bytes(b"")
    (tmp_path / "corrupt.glb").write_bytes(b"glTF\x02\x00\x00\x00" + b"\xff" * 64)
    (tmp_path / "noise.obj").write_text("this is not an obj\nf 1 2\n")
    (tmp_path / "bad.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    (tmp_path / "evil.blend").write_bytes(b"BLENDER-v500" + b"\0" * 64)
    _glb_with_external_texture(tmp_path / "external.glb")
    _glb_without_its_binary_chunk(tmp_path / "truncated.glb")
    cases = {
        "empty.glb": "empty file", "corrupt.glb": "JSON chunk", "noise.obj": "no mesh", "bad.ply": "cannot import",
        "evil.blend": "unsupported format", "truncated.glb": "cannot import it: KeyError",
        "external.glb": "outside the asset folder", "sub/../empty.glb": "'..'",
    }
    for name, needle in cases.items():
        record = {"asset_id": "x", "category": "chair", "uri": str(tmp_path / name), "up_axis": "y",
                  "norm_center": [0, 0, 0], "norm_scale": 1.0}
        status, payload = worker.render(record, attempt=1)
        assert not status["ok"] and not status["retryable"] and payload is None, (name, status)
        assert needle in status["reason"], (name, status["reason"])


def test_a_render_actor_writes_the_members_the_shards_settings_ask_for(tmp_path):
    from lrm_dist.shards.sample import decode_sample

    glb = tmp_path / "sofa.glb"
    write_procedural_glb(generate_furniture("sofa", 2, seed=3), glb)
    record = _record(tmp_path, "sofa-2", glb, "y")
    worker = RenderWorker(RenderConfig.model_validate(TINY).model_dump(mode="json"), "test", 1, encode=True,
                          shards={"image_format": "webp", "normal_maps": False})
    status, members = worker.render(record, attempt=1)
    assert status["ok"], status
    suffixes = {name.split(".", 2)[2] for name in members if name.startswith("sofa-2.000.")}
    assert suffixes == {"rgba.webp", "depth.png16"}  # lossless WebP colour, no normal map
    sample = decode_sample({"__key__": "sofa-2", **{k.split(".", 1)[1]: v for k, v in members.items()}})
    assert sample["normal"] is None and sample["rgba"].shape == (4, 64, 64, 4)
    fg = sample["rgba"][..., 3] == 255
    assert fg.sum() > 800 and (sample["depth"][fg] > 0).all()  # the colour and depth of the same object
