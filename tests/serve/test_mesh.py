"""Density grid, marching cubes and export: exact grid factorisation, surfaces, file axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from lrm_dist.geometry.frame import to_z_up
from lrm_dist.geometry.mesh_io import load_mesh
from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.reconstruct.extract import (
    MESHERS, build_mesh, density_grid, marching_cubes, occupied_box, smooth_vertices,
)
from lrm_dist.reconstruct.mesh_files import export_mesh


def test_factorised_grid_equals_querying_every_point():
    torch.manual_seed(1)
    model = LRM(SIZES["tiny"]).eval()
    planes = torch.randn(1, 3, 8, 16, 16)
    r = 12
    c = torch.linspace(-1, 1, r)
    pts = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(1, -1, 3)
    with torch.no_grad():
        ref = model.synthesizer.density(planes, pts).reshape(r, r, r)
        fast = density_grid(model.synthesizer, planes[0], r, chunk=2000)  # passes of whole x-slabs
        rows = density_grid(model.synthesizer, planes[0], r, chunk=50)  # passes of 4 z-rows within a slab
        default = density_grid(model.synthesizer, planes[0], r)  # the CPU's default: one pass here
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rows, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(default, ref, atol=1e-5, rtol=1e-5)


def _sphere_grid(r: int, radius: float, centre=(0.2, -0.1, 0.3)) -> torch.Tensor:
    c = torch.linspace(-1, 1, r)
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    dist = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2).sqrt()
    return 10.0 * (radius - dist).clamp_min(0) / radius * 2  # 0 outside, up to 20 at the centre


@pytest.mark.parametrize("mesher", sorted(MESHERS))
def test_mesher_finds_the_sphere_in_canonical_coordinates(mesher: str):
    grid = _sphere_grid(64, 0.4)
    verts, faces = MESHERS[mesher](grid, 3.0)
    centre = np.array([0.2, -0.1, 0.3])
    radii = np.linalg.norm(verts - centre, axis=1)
    expected = 0.4 * (1 - 3.0 / 20)  # where the linear profile crosses 3
    np.testing.assert_allclose(radii, expected, atol=0.02)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    assert mesh.is_watertight and mesh.volume > 0  # closed, faces wound outwards


def test_smoothing_takes_out_terraces_and_keeps_the_volume():
    """A sphere meshed from a binary (0/10) grid has staircase terraces; Taubin passes make its radius and
    its normals nearly uniform without shrinking it, as plain Laplacian smoothing would."""
    centre = torch.tensor([0.2, -0.1, 0.3])
    binary = (_sphere_grid(48, 0.5) > 0).float() * 10.0
    verts, faces = marching_cubes(binary, 5.0)

    def shape(v: np.ndarray) -> tuple[float, float, float, float]:
        mesh = trimesh.Trimesh(v, faces, process=False)
        radial = mesh.triangles_center - centre.numpy()
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        radius = np.linalg.norm(v - centre.numpy(), axis=1)
        return radius.mean(), radius.std(), float(np.mean(np.sum(mesh.face_normals * radial, axis=1))), mesh.volume

    r0, spread0, align0, vol0 = shape(verts)
    smoothed = smooth_vertices(verts, faces, 10)
    r1, spread1, align1, vol1 = shape(smoothed)
    assert smoothed.dtype == np.float32 and smoothed.shape == verts.shape
    assert spread1 < 0.75 * spread0                 # flatter terraces (0.0087 -> 0.0058 when written)
    assert align1 > align0 + 0.03 and align1 > 0.97  # normals point outwards from the centre (0.923 -> 0.978)
    assert abs(vol1 / vol0 - 1) < 0.03 and abs(r1 - r0) < 0.01  # no shrinking
    np.testing.assert_array_equal(smooth_vertices(verts, faces, 0), verts)
    shrunk = trimesh.Trimesh(verts.astype(np.float64), faces, process=False)
    trimesh.smoothing.filter_laplacian(shrunk, lamb=0.5, iterations=10, volume_constraint=False)
    assert shrunk.volume < 0.97 * vol0  # what plain Laplacian smoothing would have done


@pytest.mark.parametrize("mesher", sorted(MESHERS))
def test_surface_touching_the_box_is_closed_and_crop_is_tight(mesher: str):
    grid = torch.zeros(20, 20, 20)
    grid[5:9, 0:20, 3:4] = 10.0
    box = occupied_box(grid, 3.0)
    assert box == (slice(4, 10), slice(0, 20), slice(2, 5))
    verts, faces = MESHERS[mesher](grid, 3.0)
    assert trimesh.Trimesh(verts, faces, process=False).is_watertight
    # The slab fills y end to end: its caps lie in the zero padding, less than one voxel past the box.
    voxel = 2.0 / 19
    assert -1.0 - voxel < verts[:, 1].min() < -1.0 and 1.0 < verts[:, 1].max() < 1.0 + voxel


@pytest.mark.parametrize("mesher", sorted(MESHERS))
def test_no_surface_says_which_setting_to_change(mesher: str):
    below = torch.linspace(0.342, 0.456, 16**3).view(16, 16, 16)
    with pytest.raises(ValueError) as err:
        MESHERS[mesher](below, 3.0, name="chair.png")
    assert str(err.value) == (
        "chair.png: no surface at density threshold 3.0 (density range [0.342, 0.456], all at or below it): "
        "set serve.density_threshold inside that range (e.g. --set serve.density_threshold=0.399); "
        "an untrained or random model has no object surface: train it first")
    with pytest.raises(ValueError) as err:
        MESHERS[mesher](torch.full((16, 16, 16), 5.0), 3.0, setting="eval.density_threshold")
    assert str(err.value).startswith("object: no surface at density threshold 3.0 (density range [5, 5], all above it): "
                                     "the density is flat, so no eval.density_threshold gives a surface; ")
    with pytest.raises(ValueError, match=r"obj: no surface at density threshold 3.0 \(density range \[0, 0\], all at or"):
        MESHERS[mesher](torch.zeros(16, 16, 16), 3.0, name="obj")


def test_surface_nets_agrees_with_marching_cubes_on_a_random_field():
    torch.manual_seed(0)
    field = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 40, 40, 40) * 10, 5, 1, 2)[0, 0]
    a = trimesh.Trimesh(*marching_cubes(field, 5.0), process=False)
    b = trimesh.Trimesh(*MESHERS["surface_nets"](field, 5.0), process=False)
    assert b.volume > 0 and abs(b.volume - a.volume) / a.volume < 0.05
    assert abs(b.area - a.area) / a.area < 0.2


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_exported_files_read_back_in_the_canonical_frame(tmp_path, fmt: str):
    verts, faces = marching_cubes(_sphere_grid(32, 0.5, centre=(0.3, -0.2, 0.4)), 3.0)
    colours = np.tile(np.array([[10, 200, 30, 255]], np.uint8), (len(verts), 1))
    path = export_mesh(build_mesh(verts, faces, colours), tmp_path / f"m.{fmt}")
    up_axis = {"glb": "y", "obj": "y", "ply": "z"}[fmt]
    back = to_z_up(load_mesh(path), up_axis)
    np.testing.assert_allclose(back.bounds.mean(0), verts.min(0) / 2 + verts.max(0) / 2, atol=1e-5)
    assert back.bounds.mean(0)[2] > 0.3  # z stays up
    if fmt != "obj":
        assert np.all(back.visual.vertex_colors[:, :3] == [10, 200, 30])


def test_serving_frames_images_as_the_model_was_trained(tiny_model_dir, tmp_path):
    import json

    from lrm_dist.model.pretrained import from_pretrained
    from lrm_dist.serve.config import ServeConfig
    from lrm_dist.serve.infer import ImageToMesh, source_camera_features

    openlrm = ImageToMesh(from_pretrained(tiny_model_dir), ServeConfig(device="cpu"))
    assert (openlrm.source_distance, openlrm.source_focal, openlrm.foreground_ratio) == (2.0, 0.75, 0.8)
    trained = tmp_path / "trained"
    trained.mkdir()
    for name in ("model.safetensors",):
        (trained / name).write_bytes((tiny_model_dir / name).read_bytes())
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config.update(source_distance=2.6, source_focal=1.14, source_foreground_ratio=0.45)
    (trained / "config.json").write_text(json.dumps(config))
    own = ImageToMesh(from_pretrained(trained), ServeConfig(device="cpu"))
    assert (own.source_distance, own.source_focal, own.foreground_ratio) == (2.6, 1.14, 0.45)
    torch.testing.assert_close(own.source_camera, source_camera_features(2.6, 1.14))
    chosen = ImageToMesh(from_pretrained(trained), ServeConfig(device="cpu", source_distance=2.0, foreground_ratio=0.9))
    assert (chosen.source_distance, chosen.source_focal, chosen.foreground_ratio) == (2.0, 1.14, 0.9)
