import numpy as np
import pytest
import trimesh

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.procedural import generate_furniture
from lrm_dist.config import ConfigError, load_config
from lrm_dist.geometry.mesh_io import MeshError, load_mesh


@pytest.fixture
def bad_folder(tmp_path):
    root = tmp_path / "assets"
    (root / "chair").mkdir(parents=True)
    (root / "lamp").mkdir()
    generate_furniture("chair", 0).export(root / "chair" / "good.ply")
    (root / "chair" / "empty.glb").write_bytes(b"")
    (root / "chair" / "corrupt.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage-not-a-real-glb" * 3)
    (root / "chair" / "noise.obj").write_text("this is not an obj file\nv a b c\nf 1 2\n")
    nan = trimesh.creation.box()
    nan.vertices[0] = [np.nan, 0, 0]
    with open(root / "chair" / "nan.obj", "w") as fh:
        fh.write("".join(f"v {x} {y} {z}\n" for x, y, z in nan.vertices))
        fh.write("".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in nan.faces))
    big = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces, over the limit set below
    big.export(root / "chair" / "huge.stl")
    generate_furniture("chair", 1).export(root / "lamp" / "lamp.ply")
    return root


def test_bad_assets_are_rejected_and_the_rest_go_on(bad_folder, make_cfg):
    summary = build_assets(make_cfg([{"kind": "local", "path": str(bad_folder)}], max_faces=20000))
    rows = {r["uri"].rsplit("/", 1)[1]: r for r in read_asset_manifest(summary.manifest).to_pylist()}
    assert rows["good.ply"]["status"] == "ok"
    expect = {
        "empty.glb": "empty file",
        "corrupt.glb": "cannot read mesh",
        "nan.obj": "NaN",
        "huge.stl": "over the 20,000 face limit",
        "lamp.ply": "unknown category 'lamp'",
    }
    for name, needle in expect.items():
        row = rows[name]
        assert row["status"] == "rejected", name
        assert needle in row["reason"] and name in row["reason"], (name, row["reason"])
        assert "\n" not in row["reason"]
    assert rows["noise.obj"]["status"] == "rejected"
    assert summary.ok == 1 and summary.rejected == len(rows) - 1


def test_load_mesh_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.glb"):
        load_mesh(tmp_path / "missing.glb")
    (tmp_path / "x.fbx").write_bytes(b"x")
    with pytest.raises(MeshError, match=r"x\.fbx: unsupported mesh format"):
        load_mesh(tmp_path / "x.fbx")


def test_unknown_category_in_config():
    with pytest.raises(ConfigError, match="unknown category 'lamp'"):
        load_config(None, ["assets.sources=[{kind: procedural, categories: [lamp]}]"])
