"""``lrm-dist infer``: images (files and folders) to meshes trimesh loads; bad images fail clearly."""

from __future__ import annotations

import json

import numpy as np
import trimesh

from lrm_dist.cli import main
from tests.hostile_images import png_bomb, truncated_png
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


def test_bad_images_are_reported_and_the_others_reconstructed(tmp_path, tiny_model_dir, surface_threshold, capsys,
                                                               caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    rgba_image(folder / "a_good.png")
    (folder / "bad.png").write_bytes(b"not an image")
    (folder / "bomb.png").write_bytes(png_bomb(20000, 20000))
    (folder / "cut.png").write_bytes(truncated_png())
    code = main(["infer", str(folder), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, surface_threshold)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err and "lrm-dist infer: failed items: infer 3" in err
    assert out.strip().splitlines()[-1].startswith("infer: 1 reconstructed, 3 failed")
    for name, reason in (("bad.png", "not a readable image"), ("bomb.png", "image too large to decode safely"),
                         ("cut.png", "not a readable image (OSError: image file is truncated")):
        assert len([m for m in caplog.messages if m.startswith(f"{folder / name}: {reason}")]) == 1, name
    assert len(trimesh.load(tmp_path / "out" / "a_good.glb", force="mesh").faces) > 10
    records = json.loads((tmp_path / "out" / "infer.json").read_text())
    assert [(r["image"].rsplit("/", 1)[-1], r["status"]) for r in records] == [
        ("a_good.png", "ok"), ("bad.png", "failed"), ("bomb.png", "failed"), ("cut.png", "failed")]


def test_bad_images_fail_before_the_model_loads(tmp_path, caplog):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code = main(["infer", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "no-model")])
    assert code == 1  # a missing model would exit 2: it is never loaded
    assert caplog.messages[0].startswith(f"{tmp_path / 'bad.png'}: not a readable image")
    assert json.loads((tmp_path / "out" / "infer.json").read_text())[0]["status"] == "failed"


def test_no_surface_is_a_failed_record_and_infer_json_is_written(tmp_path, tiny_model_dir, capsys, caplog):
    image = rgba_image(tmp_path / "x.png")
    code = main(["infer", str(image), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, 1e6)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err and "lrm-dist infer: failed items: infer 1" in err
    assert out.strip().splitlines()[-1].startswith("infer: 0 reconstructed, 1 failed")
    (record,) = json.loads((tmp_path / "out" / "infer.json").read_text())
    assert record["image"] == str(image) and record["status"] == "failed"
    assert record["error"].startswith(f"{image}: no surface at density threshold 1000000.0 (density range [")
    assert "set serve.density_threshold inside that range" in record["error"] and "train it first" in record["error"]
    assert [m for m in caplog.messages if "no surface" in m] == [record["error"]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["infer.json"]


def test_one_images_failure_does_not_stop_the_batch(tmp_path, tiny_model_dir, surface_threshold, monkeypatch):
    from lrm_dist.serve.infer import ImageToMesh

    reconstruct = ImageToMesh.reconstruct

    def failing_on_b(self, image, name="object"):
        if name.endswith("b.png"):
            raise RuntimeError("CUDA out of memory\nsecond line")
        return reconstruct(self, image, name)

    monkeypatch.setattr(ImageToMesh, "reconstruct", failing_on_b)
    images = [rgba_image(tmp_path / f"{n}.png") for n in ("a", "b", "c")]
    code = main(["infer", *map(str, images), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, surface_threshold)])
    assert code == 1
    records = json.loads((tmp_path / "out" / "infer.json").read_text())
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert records[1]["error"] == f"{images[1]}: RuntimeError: CUDA out of memory"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.glb", "c.glb", "infer.json"]


def test_every_input_gets_its_own_output(tmp_path, tiny_model_dir, surface_threshold):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        rgba_image(tmp_path / folder / "x.png")
    front, side = rgba_image(tmp_path / "chair.front.png"), rgba_image(tmp_path / "chair.side.png")
    inputs = [front, side, front, tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"]
    code = main(["infer", *map(str, inputs), "-o", str(tmp_path / "out"), *_args(tiny_model_dir, surface_threshold)])
    assert code == 0
    records = json.loads((tmp_path / "out" / "infer.json").read_text())
    assert [(r["image"], r["outputs"]) for r in records] == [
        (str(image), [str(tmp_path / "out" / name)])
        for image, name in zip(inputs, ["chair.front.glb", "chair.side.glb", "chair.front-2.glb", "x.glb", "x-2.glb"])
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "chair.front-2.glb", "chair.front.glb", "chair.side.glb", "infer.json", "x-2.glb", "x.glb"]


def test_without_model_infer_uses_the_workdirs_trained_model(tmp_path, tiny_model_dir, surface_threshold):
    import shutil

    image = rgba_image(tmp_path / "chair.png")
    workdir = tmp_path / "run"
    args = ["--set", f"workdir={workdir}", "--set", f"serve.density_threshold={surface_threshold}",
            "--set", "serve.mesh_resolution=32", "--set", "serve.device=cpu"]
    shutil.copytree(tiny_model_dir, workdir / "train" / "model")
    assert main(["infer", str(image), "-o", str(tmp_path / "out"), *args]) == 0
    assert (tmp_path / "out" / "chair.glb").is_file()


def test_without_any_model_infer_says_how_to_get_one(tmp_path, capsys):
    image = rgba_image(tmp_path / "chair.png")
    code = main(["infer", str(image), "-o", str(tmp_path / "out"), "--set", f"workdir={tmp_path / 'empty'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "no model to run" in err and "train one" in err and "--model" in err
    assert not (tmp_path / "out").exists()
