import pytest
import numpy as np
import pyarrow.parquet as pq

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.categories import CATEGORIES
from lrm_dist.assets.procedural import generate_furniture
from lrm_dist.geometry.frame import CANONICAL_HALF_EXTENT
from lrm_dist.schema import ASSET_SCHEMA


def test_deterministic_per_seed_and_index():
    a, b = generate_furniture("chair", 3, seed=1), generate_furniture("chair", 3, seed=1)
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    c = generate_furniture("chair", 4, seed=1)
    assert not (len(c.vertices) == len(a.vertices) and np.allclose(c.vertices, a.vertices))


def test_every_piece_is_watertight_and_varied():
    for category in CATEGORIES:
        shapes = set()
        for i in range(12):
            mesh = generate_furniture(category, i)
            assert mesh.is_watertight and mesh.is_volume, (category, i)
            shapes.add((len(mesh.faces), tuple(np.round(mesh.extents, 2))))
        assert len(shapes) >= 8, f"{category}: only {len(shapes)} distinct shapes in 12"


def test_front_faces_minus_y_and_z_up():
    for i in range(5):
        sofa = generate_furniture("sofa", i)
        assert np.isclose(sofa.bounds[0, 2], 0.0, atol=0.01)  # stands on the floor (z up)
        top = sofa.vertices[sofa.vertices[:, 2] > 0.8 * sofa.bounds[1, 2]]
        assert top[:, 1].mean() > 0.1  # the back rest is behind (+y): the front faces -y


def test_build_100_assets(make_cfg):
    summary = build_assets(make_cfg([{"kind": "procedural", "per_category": 20}]))
    assert summary.ok == 100 and summary.rejected == 0
    assert summary.per_category == {c: 20 for c in CATEGORIES}
    table = read_asset_manifest(summary.manifest)
    assert pq.read_schema(summary.manifest).metadata[b"lrm_dist.schema"] == b"asset"
    assert table.schema.equals(ASSET_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert len({r["asset_id"] for r in rows}) == 100
    assert all("." not in r["asset_id"] for r in rows)
    import trimesh

    for row in rows[::7]:
        gt = trimesh.load(row["mesh_path"], force="mesh")
        assert gt.is_watertight
        assert np.allclose(gt.bounds.mean(axis=0), 0, atol=1e-6)
        assert np.isclose(gt.extents.max(), 2 * CANONICAL_HALF_EXTENT, atol=1e-6)
        assert row["watertight"] and row["status"] == "ok" and len(row["sha256"]) == 64
    # a rerun reuses everything unchanged
    again = build_assets(make_cfg([{"kind": "procedural", "per_category": 20}]))
    assert again.reused == 100 and again.ok == 100


@pytest.mark.integration
def test_ray_tasks_give_the_same_manifest(make_cfg, tmp_path):
    import ray

    here = read_asset_manifest(build_assets(make_cfg([{"kind": "procedural", "per_category": 2}])).manifest)
    cfg = make_cfg([{"kind": "procedural", "per_category": 2}], workers=2)
    cfg = cfg.model_copy(update={"workdir": str(tmp_path / "ray-work"),
                                 "ray": cfg.ray.model_copy(update={"num_cpus": 2})})
    try:
        summary = build_assets(cfg)
    finally:
        ray.shutdown()
    there = read_asset_manifest(summary.manifest)
    assert summary.ok == 10 and there.column("asset_id").to_pylist() == here.column("asset_id").to_pylist()
    assert there.column("sha256").to_pylist() == here.column("sha256").to_pylist()


@pytest.mark.parametrize("style", ["shaped", "curved"])
def test_other_styles_are_watertight_one_body_varied_and_their_own(style):
    for category in CATEGORIES:
        shapes = set()
        for i in range(8):
            mesh = generate_furniture(category, i, style=style)
            assert mesh.is_watertight and mesh.is_volume and len(mesh.split(only_watertight=False)) == 1, (category, i)
            assert np.isclose(mesh.bounds[0, 2], 0.0, atol=0.01), (category, i)  # on the floor
            shapes.add((len(mesh.faces), tuple(np.round(mesh.extents, 2))))
        assert len(shapes) == 8, category
    blocks, other = generate_furniture("chair", 2, seed=1), generate_furniture("chair", 2, seed=1, style=style)
    assert not (len(blocks.vertices) == len(other.vertices) and np.allclose(blocks.vertices, other.vertices))
    again = generate_furniture("chair", 2, seed=1, style=style)
    assert np.array_equal(again.vertices, other.vertices) and np.array_equal(again.faces, other.faces)
    for i in range(4):
        sofa = generate_furniture("sofa", i, style=style)
        top = sofa.vertices[sofa.vertices[:, 2] > 0.8 * sofa.bounds[1, 2]]
        assert top[:, 1].mean() > 0.1  # the back cushions are behind: the front faces -y
    with pytest.raises(ValueError, match="procedural style"):
        generate_furniture("chair", 0, style="wobbly")


def test_the_three_styles_are_three_constructions():
    """Same (seed, category, index), three styles: three different pieces (each style reaches its own builders)."""
    pieces = [generate_furniture("table", 3, seed=2, style=style) for style in ("blocks", "shaped", "curved")]
    volumes = [round(float(p.volume), 6) for p in pieces]
    assert len(set(volumes)) == 3 and len({len(p.faces) for p in pieces}) == 3


def test_build_other_style_assets_with_their_own_ids(make_cfg):
    summary = build_assets(make_cfg([{"kind": "procedural", "per_category": 2, "style": "shaped"},
                                     {"kind": "procedural", "per_category": 2, "style": "curved"},
                                     {"kind": "procedural", "per_category": 2}]))
    assert summary.ok == 30 and summary.rejected == 0
    ids = read_asset_manifest(summary.manifest).column("asset_id").to_pylist()
    assert [sum(i.startswith(f"{p}-") for i in ids) for p in ("shaped", "curved", "proc")] == [10, 10, 10]
