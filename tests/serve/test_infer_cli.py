"""``lrm-dist infer``: images (files and folders) to meshes trimesh loads; bad images fail clearly."""

from __future__ import annotations

import json

import numpy as np
import trimesh

from lrm_dist.cli import main
from tests.serve.conftest import rgba_image


def _args(model_dir, threshold: float, *extra: str) -> list[str]:
    return [
        "--model", str(model_dir), "--set", f"serve.density_threshold={threshold}",
        "--set", "serve.mesh_resolution=32", "--set", "serve.device=cpu", *extra,
    ]


def test_infer_writes_a_glb_that_trimesh_loads(tmp_path, tiny_model_dir, surface_threshold):
    image = rgba_image(tmp_path / "chair.png")
    code = main(["infer", str(image), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, surface_threshold)])
    assert code == 0
    scene = trimesh.load(tmp_path / "out" / "chair.glb")
    mesh = scene.to_geometry() if isinstance(scene, trimesh.Scene) else scene
    assert len(mesh.faces) > 10
    assert np.abs(mesh.vertices).max() <= 1.0 + 0.1
    record = json.loads((tmp_path / "out" / "infer.json").read_text())[0]
    assert record["n_faces"] == len(mesh.faces)
    assert set(record) >= {"seconds_triplane", "seconds_grid", "seconds_mesh", "seconds_colours"}


def test_infer_folder_formats_and_video(tmp_path, tiny_model_dir, surface_threshold):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    rgba_image(tmp_path / "in" / "a.png")
    rgba_image(tmp_path / "in" / "sub" / "b.png", box=(5, 5, 60, 30))
    args = _args(tiny_model_dir, surface_threshold, "--set", "serve.formats=[ply,obj]", "--set", "serve.mesher=surface_nets",
                 "--set", "serve.video_views=3", "--set", "serve.video_size=16", "--video")
    assert main(["infer", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *args]) == 0
    for stem in ("a", "sub/b"):
        assert len(trimesh.load(tmp_path / "out" / f"{stem}.ply").faces) > 0
        assert len(trimesh.load(tmp_path / "out" / f"{stem}.obj", force="mesh").faces) > 0
        from PIL import Image

        with Image.open(tmp_path / "out" / f"{stem}.gif") as gif:
            assert gif.n_frames == 3 and gif.size == (16, 16)


def test_bad_images_give_one_line_errors(tmp_path, tiny_model_dir, capsys):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code = main(["infer", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, 3.0)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lrm-dist infer: error: ") and "bad.png: not a readable image" in err
    assert not (tmp_path / "out").exists()


def test_no_surface_is_reported(tmp_path, tiny_model_dir, capsys):
    image = rgba_image(tmp_path / "x.png")
    code = main(["infer", str(image), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, 1e6)])
    assert code == 2
    assert "x.png: no surface at density threshold" in capsys.readouterr().err
