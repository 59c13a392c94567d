"""Every local file gets its own stable id and exactly one manifest row; outputs are replaced atomically."""

import threading
from pathlib import Path

import pytest

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.manifest import replace_atomically
from lrm_dist.assets.procedural import generate_furniture

COLLIDING = ["a.ply", "a.stl", "a b.ply", "a-b.ply", "x.y.ply", "x-y.ply", "sub/c.ply", "sub-c.ply"]


@pytest.fixture
def colliding(tmp_path):
    root = tmp_path / "src"
    for i, name in enumerate(COLLIDING):
        path = root / "chair" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_furniture("chair", i).export(path)
    return root


def test_names_cleaning_to_one_id_get_distinct_ids_and_one_row_each(colliding, make_cfg):
    cfg = make_cfg([{"kind": "local", "path": str(colliding)}])
    summary = build_assets(cfg)
    rows = read_asset_manifest(summary.manifest).to_pylist()
    assert sorted(Path(r["uri"]).relative_to(colliding / "chair").as_posix() for r in rows) == sorted(COLLIDING)
    ids = [r["asset_id"] for r in rows]
    assert len(set(ids)) == len(COLLIDING) and all(r["status"] == "ok" for r in rows)
    assert (summary.ok, summary.rejected, summary.per_category) == (8, 0, {"chair": 8})
    assert len({r["mesh_path"] for r in rows}) == 8 and all(Path(r["mesh_path"]).is_file() for r in rows)
    # each ground-truth mesh is its own file's (distinct furniture pieces, so distinct face counts or bounds)
    assert len({(r["n_faces"], tuple(r["bounds"])) for r in rows}) == 8
    again = build_assets(cfg)
    assert [r["asset_id"] for r in read_asset_manifest(again.manifest).to_pylist()] == ids
    assert (again.ok, again.reused) == (8, 8)


def test_a_file_listed_twice_is_one_row(colliding, make_cfg):
    (colliding / "chair" / "alias.ply").symlink_to(colliding / "chair" / "a.ply")
    source = {"kind": "local", "path": str(colliding)}
    summary = build_assets(make_cfg([source, source]))
    rows = read_asset_manifest(summary.manifest).to_pylist()
    assert len(rows) == len({r["asset_id"] for r in rows}) == len(COLLIDING)
    assert "alias.ply" not in {Path(r["uri"]).name for r in rows}
    assert summary.ok == len(COLLIDING)


def test_replace_atomically_never_shares_a_temporary_file(tmp_path):
    target = tmp_path / "out" / "x.ply"
    both_writing = threading.Barrier(2)
    used: list[Path] = []

    def writer(text: str):
        def write(tmp: Path) -> None:
            used.append(tmp)
            tmp.write_text(text * 1000)
            both_writing.wait(timeout=10)  # both runs hold their temporary file at once
            assert tmp.read_text() == text * 1000
        return lambda: replace_atomically(target, write)

    threads = [threading.Thread(target=writer(t)) for t in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(used)) == 2 and all(p.parent == target.parent and p.suffix == ".ply" for p in used)
    assert target.read_text() in ("A" * 1000, "B" * 1000)
    assert [p.name for p in target.parent.iterdir()] == ["x.ply"]


def test_replace_atomically_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.parquet"
    target.write_text("previous")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"] and target.read_text() == "previous"
