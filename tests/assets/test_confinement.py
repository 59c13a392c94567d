"""Local assets never pull files from outside their folder into the manifest or the ground-truth meshes."""

from pathlib import Path

import pytest
from PIL import Image

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.procedural import generate_furniture

OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\nf 1/1 3/3 4/2\n"


@pytest.fixture
def hostile(tmp_path):
    """A local source whose chair folder mixes a good textured OBJ with ones reaching outside the source."""
    root, outside = tmp_path / "src", tmp_path / "outside"
    chair = root / "chair"
    chair.mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (4, 4), (255, 0, 255)).save(outside / "secret.png")
    (outside / "secret.mtl").write_text("newmtl m\nmap_Kd secret.png\n")
    generate_furniture("chair", 0).export(outside / "secret.ply")
    (outside / "more").mkdir()
    generate_furniture("chair", 1).export(outside / "more" / "hidden.ply")
    Image.new("RGB", (4, 4), (0, 200, 0)).save(chair / "wood.png")
    (chair / "good.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd wood.png\n")
    (chair / "good.obj").write_text("mtllib good.mtl\n" + OBJ)
    (chair / "abs.mtl").write_text(f"newmtl m\nmap_Kd {outside / 'secret.png'}\n")
    (chair / "abs.obj").write_text("mtllib abs.mtl\n" + OBJ)
    (chair / "up.obj").write_text("mtllib ../../outside/secret.mtl\n" + OBJ)
    (chair / "tex-link.png").symlink_to(outside / "secret.png")
    (chair / "linked.mtl").write_text("newmtl m\nmap_Kd tex-link.png\n")
    (chair / "linked.obj").write_text("mtllib linked.mtl\n" + OBJ)
    (chair / "mesh-link.ply").symlink_to(outside / "secret.ply")
    (root / "table").symlink_to(outside / "more", target_is_directory=True)
    return root, outside


def test_outside_references_become_rejected_rows(hostile, make_cfg):
    root, outside = hostile
    summary = build_assets(make_cfg([{"kind": "local", "path": str(root)}]))
    rows = {Path(r["uri"]).name: r for r in read_asset_manifest(summary.manifest).to_pylist()}
    assert set(rows) == {"good.obj", "abs.obj", "up.obj", "linked.obj", "mesh-link.ply", "table"}
    assert rows["good.obj"]["status"] == "ok"
    expect = {
        "abs.obj": f"abs.obj: reference '{outside / 'secret.png'}' in abs.mtl is outside the asset folder",
        "up.obj": "up.obj: reference '../../outside/secret.mtl' is outside the asset folder",
        "linked.obj": "linked.obj: reference 'tex-link.png' in linked.mtl resolves outside the asset folder",
        "mesh-link.ply": f"mesh-link.ply: symlink resolving outside the source folder {root}",
        "table": f"table: symlink resolving outside the source folder {root}",
    }
    for name, reason in expect.items():
        assert rows[name]["status"] == "rejected", name
        assert reason in rows[name]["reason"], (name, rows[name]["reason"])
        assert rows[name]["mesh_path"] is None and rows[name]["sha256"] is None
    assert (summary.ok, summary.rejected) == (1, 5)
    # nothing from outside reached the workdir: only the good asset's ground truth was written
    meshes = sorted(p.name for p in (Path(summary.manifest).parent / "meshes").iterdir())
    assert meshes == [Path(rows["good.obj"]["mesh_path"]).name]
    secret = (outside / "secret.png").read_bytes()
    work = Path(summary.manifest).parent.parent
    assert not any(secret in p.read_bytes() for p in work.rglob("*") if p.is_file())


def test_an_unchanged_mesh_whose_material_turned_hostile_is_checked_again(hostile, make_cfg):
    root, outside = hostile
    cfg = make_cfg([{"kind": "local", "path": str(root)}])
    first = build_assets(cfg)
    assert first.ok == 1
    (root / "chair" / "good.mtl").write_text(f"newmtl m\nmap_Kd {outside / 'secret.png'}\n")  # good.obj unchanged
    second = build_assets(cfg)
    rows = {Path(r["uri"]).name: r for r in read_asset_manifest(second.manifest).to_pylist()}
    assert (second.ok, second.reused) == (0, 0)
    assert rows["good.obj"]["status"] == "rejected"
    assert "reference" in rows["good.obj"]["reason"] and "in good.mtl is outside" in rows["good.obj"]["reason"]
