"""Ground-truth occupancy grids: labels against the mesh, the packed member format, point sampling."""

import io

import numpy as np
import pytest
import trimesh

from lrm_dist.geometry.inside import contains
from lrm_dist.geometry.occupancy import (
    cell_centres, decode_grid, encode_grid, lookup, occupancy_grid, surface_cells, surface_layers, surface_points,
)
from lrm_dist.geometry.cameras import intrinsics_from_fov, look_at_c2w


def _box(half=(0.5, 0.3, 0.2), centre=(0.1, 0.0, -0.1)):
    mesh = trimesh.creation.box(extents=2 * np.asarray(half))
    mesh.apply_translation(centre)
    return mesh


def test_grid_of_a_box_is_the_box():
    mesh = _box()
    grid = occupancy_grid(mesh.vertices, mesh.faces, 20)
    centres = cell_centres(20)
    expected = np.all(np.abs(centres - np.array([0.1, 0.0, -0.1])) < np.array([0.5, 0.3, 0.2]), axis=-1)
    assert grid.shape == (20, 20, 20)
    assert np.array_equal(grid, expected)
    assert grid[np.unravel_index(np.argmin(np.linalg.norm(centres - [0.1, 0, -0.1], axis=-1)), grid.shape)]


def test_grid_labels_match_the_inside_test_on_a_sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.7)
    grid = occupancy_grid(mesh.vertices, mesh.faces, 16)
    radius = np.linalg.norm(cell_centres(16), axis=-1)
    assert np.all(grid[radius < 0.66]) and not np.any(grid[radius > 0.72])
    assert np.array_equal(grid.reshape(-1), contains(mesh.vertices, mesh.faces, cell_centres(16).reshape(-1, 3)))


def test_encode_decode_round_trip_and_size():
    mesh = _box()
    grid = occupancy_grid(mesh.vertices, mesh.faces, 32)
    data = encode_grid(grid)
    assert np.array_equal(decode_grid(data), grid)
    assert len(data) < 32**3 / 8  # compressed below the packed bits


def test_decode_refuses_malformed_and_pickled_members():
    with pytest.raises(ValueError, match="not a readable occupancy grid"):
        decode_grid(b"garbage", "x.occupancy.npz")
    buf = io.BytesIO()
    np.savez(buf, bits=np.array([{"evil": 1}], dtype=object), resolution=np.int64(2), version=np.int64(1))
    with pytest.raises(ValueError, match="not a readable occupancy grid"):  # object arrays need pickle: refused
        decode_grid(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, bits=np.zeros(3, np.uint8), resolution=np.int64(8), version=np.int64(1))
    with pytest.raises(ValueError, match="is not valid"):
        decode_grid(buf.getvalue())


def test_surface_points_and_lookup_labels():
    mesh = _box()
    grid = occupancy_grid(mesh.vertices, mesh.faces, 24)
    points, inside = surface_points(grid, 3000, np.random.default_rng(0))
    assert points.shape == (3000, 3) and inside.dtype == bool
    assert np.array_equal(inside, contains(mesh.vertices, mesh.faces, points))
    near = surface_cells(grid)
    idx = np.clip(((points + 1) / 2 * 24).astype(int), 0, 23)
    assert near[idx[:, 0], idx[:, 1], idx[:, 2]].all()
    assert 0.3 < inside.mean() < 0.7  # both sides of the surface
    uniform = np.random.default_rng(1).uniform(-1.3, 1.3, size=(5000, 3))
    labels = lookup(grid, uniform)
    truth = contains(mesh.vertices, mesh.faces, uniform)
    assert (labels == truth).mean() > 0.97  # wrong only within a cell of the surface
    assert not labels[np.any(np.abs(uniform) > 1, axis=-1)].any()  # outside the grid: outside


def test_surface_layers_of_a_box_seen_along_an_axis():
    """A camera on -y at distance 3 sees the box's near face at 3 - 0.3 and its far face at 3 + 0.3 (within a
    cell), only inside the box's silhouette; a hollow grid keeps the far face as the last layer."""
    grid = np.all(np.abs(cell_centres(48)) < np.array([0.4, 0.3, 0.2]), axis=-1)
    c2w = look_at_c2w(np.array([0.0, -3.0, 0.0]))
    intrinsics = intrinsics_from_fov(40.0, 64, 64)
    first, last, hit = surface_layers(grid, c2w, intrinsics, 32)
    cell = 2.0 / 48
    assert hit[16, 16] and not hit[0, 0] and not hit[16, 0]
    assert abs(first[16, 16] - 2.7) <= cell and abs(last[16, 16] - 3.3) <= cell
    # the silhouette: x in [-0.4, 0.4] at depth 2.7 spans |u - 32| <= f * 0.4 / 2.7 pixels of 64
    f = intrinsics[0]
    cols = np.flatnonzero(hit[16])
    assert abs((cols.max() - cols.min() + 1) * 2 - 2 * f * 0.4 / 2.7) <= 4
    hollow = grid & surface_cells(grid)
    f2, l2, h2 = surface_layers(hollow, c2w, intrinsics, 32)
    assert np.array_equal(h2, hit) and np.allclose(f2, first) and np.allclose(l2, last)
    empty = surface_layers(np.zeros_like(grid), c2w, intrinsics, 32)
    assert not empty[2].any() and not empty[0].any()
    fine = np.all(np.abs(cell_centres(160)) < np.array([0.4, 0.3, 0.2]), axis=-1)  # cells far below a pixel
    f3, l3, h3 = surface_layers(fine, c2w, intrinsics, 32)
    assert np.array_equal(h3, hit)  # one sample per cell still covers every pixel of the silhouette
    assert abs(f3[16, 16] - 2.7) <= 2.0 / 160 and abs(l3[16, 16] - 3.3) <= 2.0 / 160
