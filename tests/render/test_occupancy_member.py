"""The render stage's ground-truth occupancy member: made from the canonical mesh, skipped with a reason."""

import trimesh

from lrm_dist.render.fanout import add_occupancy


def _sample():
    return {"meta": {}}


def test_occupancy_from_the_records_mesh(tmp_path):
    path = tmp_path / "box.ply"
    trimesh.creation.box(extents=(1.0, 0.5, 0.5)).export(path)
    sample = _sample()
    add_occupancy(sample, {"mesh_path": str(path)}, 16)
    grid = sample["occupancy"]
    assert grid.shape == (16, 16, 16) and grid.dtype == bool
    assert sample["meta"]["occupancy_resolution"] == 16
    assert abs(grid.mean() - 0.5 * 0.25 * 0.25) < 0.01  # the box's share of the [-1, 1]^3 volume
    assert grid[8, 8, 8] and not grid[0, 0, 0]


def test_missing_or_broken_meshes_skip_the_member_with_a_reason(tmp_path):
    sample = _sample()
    add_occupancy(sample, {"mesh_path": None}, 16)
    assert "occupancy" not in sample and "occupancy_skipped" not in sample["meta"]
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat nonsense\n")
    add_occupancy(sample, {"mesh_path": str(broken)}, 16)
    assert "occupancy" not in sample
    assert sample["meta"]["occupancy_skipped"].startswith(str(broken))
    off = _sample()
    add_occupancy(off, {"mesh_path": str(broken)}, 0)  # resolution 0: no labels, no attempt
    assert off == {"meta": {}}
