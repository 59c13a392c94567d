import csv
import os

import numpy as np
import pytest
import trimesh

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.procedural import generate_furniture


def _write_all_formats(root):
    mesh = generate_furniture("table", 0, colors=False)
    y_up = mesh.copy()
    y_up.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    for fmt, m in [("glb", y_up), ("gltf", y_up), ("obj", y_up), ("ply", mesh), ("stl", mesh)]:
        (root / "table").mkdir(parents=True, exist_ok=True)
        m.export(root / "table" / f"t_{fmt}.{fmt}")
    return mesh


def test_reads_all_five_formats_into_one_frame(tmp_path, make_cfg):
    mesh = _write_all_formats(tmp_path / "meshes")
    summary = build_assets(make_cfg([{"kind": "local", "path": str(tmp_path / "meshes")}]))
    rows = read_asset_manifest(summary.manifest).to_pylist()
    assert sorted(r["uri"].rsplit(".", 1)[1] for r in rows) == ["glb", "gltf", "obj", "ply", "stl"]
    assert all(r["status"] == "ok" and r["category"] == "table" for r in rows), rows
    # every format lands in the same canonical frame: same bounds as the z-up source
    for r in rows:
        assert np.allclose(np.array(r["bounds"]).reshape(2, 3), mesh.bounds, atol=1e-5), r["uri"]


def test_categories_from_labels_file(tmp_path, make_cfg):
    root = tmp_path / "flat"
    root.mkdir()
    generate_furniture("bed", 0).export(root / "a.ply")
    generate_furniture("sofa", 0).export(root / "b.stl")
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["file", "category"], ["a.ply", "bed"], ["b.stl", "sofa"]])
    summary = build_assets(make_cfg([{"kind": "local", "path": str(root), "labels": "labels.csv"}]))
    cats = {r["uri"].rsplit("/", 1)[1]: r["category"] for r in read_asset_manifest(summary.manifest).to_pylist()}
    assert cats == {"a.ply": "bed", "b.stl": "sofa"}


def test_missing_folder_is_a_clear_error(tmp_path, make_cfg):
    with pytest.raises(FileNotFoundError, match="local source folder not found: .*nowhere"):
        build_assets(make_cfg([{"kind": "local", "path": str(tmp_path / "nowhere")}]))


def test_a_workdir_moves_and_is_read_from_any_folder(tmp_path, monkeypatch):
    import shutil

    from lrm_dist.assets import build_assets, read_asset_manifest
    from lrm_dist.config import load_config

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["workdir=run", "assets.sources=[{kind: procedural, per_category: 1, categories: [chair]}]"])
    build_assets(cfg)
    import pyarrow.parquet as pq

    stored = pq.read_table("run/assets/assets.parquet").to_pylist()[0]
    assert stored["mesh_path"] == os.path.join("assets", "meshes", f"{stored['asset_id']}.ply")  # workdir-relative
    shutil.move("run", "moved")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    row = read_asset_manifest(tmp_path / "moved" / "assets" / "assets.parquet").to_pylist()[0]
    assert row["mesh_path"] == str(tmp_path / "moved" / "assets" / "meshes" / f"{row['asset_id']}.ply")
    assert os.path.isfile(row["mesh_path"]) and os.path.isfile(row["uri"])
    again = build_assets(load_config(None, [f"workdir={tmp_path / 'moved'}",
                                            "assets.sources=[{kind: procedural, per_category: 1, categories: [chair]}]"]))
    assert again.reused == 1  # the moved workdir resumes: nothing is rebuilt
