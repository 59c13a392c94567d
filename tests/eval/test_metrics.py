"""The metrics against closed-form answers: concentric spheres, a cube against a shifted cube, a mesh against itself."""

import math

import numpy as np
import pytest
import trimesh

from lrm_dist.geometry.inside import contains
from lrm_dist.eval.metrics import (
    WORST_DISTANCE, evaluate_mesh, sample_ground_truth, surface_metrics, volumetric_iou,
)
from lrm_dist.geometry.sampling import sample_box, sample_surface

THRESHOLDS = [0.01, 0.02, 0.05]


def _sphere(radius: float) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=radius)


def _cube(side: float, shift=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(side, side, side)).apply_translation(shift)


def test_concentric_spheres_iou_and_chamfer():
    r1, r2 = 0.3, 0.4
    inner, outer = _sphere(r1), _sphere(r2)
    gt = sample_ground_truth(outer.vertices, outer.faces, n_points=100_000, seed=0)
    m = evaluate_mesh(inner.vertices, inner.faces, gt, THRESHOLDS, seed=0)
    assert m.iou == pytest.approx((r1 / r2) ** 3, abs=0.012)
    assert m.accuracy == pytest.approx(r2 - r1, abs=2e-3)
    assert m.completeness == pytest.approx(r2 - r1, abs=2e-3)
    assert m.chamfer_l1 == pytest.approx(r2 - r1, abs=2e-3)
    assert m.normal_consistency > 0.995  # radial normals agree
    assert m.fscore == [0.0, 0.0, 0.0]  # every point is 0.1 away: none within 0.05
    assert not m.empty


def _shifted_cube_expected(side: float, shift: float, thresholds: list[float]) -> tuple[float, list[float]]:
    """Exact mean surface-to-surface distance and F-scores of a cube against the same cube shifted along x.

    Per unit cube with relative shift d: the face left behind is d away; the face inside the other cube is
    min(d, distance to its square's border) away (mean (1 - (1 - 2d)^3) / 6); each side face is d - x away
    for x < d, else on the other cube (mean d^2 / 2). Both directions are symmetric.
    """
    d = shift / side
    mean = (d + (1 - (1 - 2 * d) ** 3) / 6 + 4 * d * d / 2) / 6
    fscores = []
    for t in (t / side for t in thresholds):
        behind = 1.0 if d < t else 0.0
        inside = 1.0 if d < t else 1 - (1 - 2 * t) ** 2
        sides = 1.0 if d < t else 1 - (d - t)
        fscores.append((behind + inside + 4 * sides) / 6)  # precision = recall, so F = either
    return side * mean, fscores


def test_cube_against_shifted_cube():
    side, shift, n = 0.8, 0.08, 200_000
    a, b = _cube(side), _cube(side, (shift, 0.0, 0.0))
    gt = sample_ground_truth(b.vertices, b.faces, n_points=n, seed=1)
    m = evaluate_mesh(a.vertices, a.faces, gt, THRESHOLDS, seed=1)
    assert m.iou == pytest.approx((side - shift) / (side + shift), abs=0.01)
    exact, fscores = _shifted_cube_expected(side, shift, THRESHOLDS)
    # Points on the coincident side faces (true distance 0) land on average 0.5/sqrt(density) from the
    # other cloud's nearest sample (2D Poisson nearest neighbour): that is the point-cloud estimator's bias.
    on_other = 4 * (1 - shift / side) / 6
    bias = on_other * 0.5 / math.sqrt(n / (6 * side * side))
    assert m.chamfer_l1 == pytest.approx(exact + bias, rel=0.03)
    assert m.fscore == pytest.approx(fscores, abs=0.01)


def test_mesh_against_itself():
    mesh = trimesh.creation.annulus(r_min=0.15, r_max=0.35, height=0.3, sections=64)
    gt = sample_ground_truth(mesh.vertices, mesh.faces, n_points=100_000, seed=2)
    m = evaluate_mesh(mesh.vertices, mesh.faces, gt, THRESHOLDS, seed=2)
    assert m.iou == 1.0
    assert m.chamfer_l1 < 3e-3
    assert m.normal_consistency > 0.98
    assert m.fscore == pytest.approx([1.0, 1.0, 1.0], abs=2e-3)


@pytest.mark.parametrize("faces", [None, np.zeros((0, 3), dtype=np.int64)])
def test_empty_prediction_is_the_worst_row(faces):
    gt_mesh = _cube(0.5)
    gt = sample_ground_truth(gt_mesh.vertices, gt_mesh.faces, n_points=2_000, seed=0)
    m = evaluate_mesh(None if faces is None else np.zeros((0, 3)), faces, gt, THRESHOLDS)
    assert m.empty and m.iou == 0.0
    assert m.chamfer_l1 == m.accuracy == m.completeness == WORST_DISTANCE
    assert m.normal_consistency == 0.0 and m.fscore == [0.0, 0.0, 0.0]


def test_degenerate_prediction_counts_as_empty():
    gt_mesh = _cube(0.5)
    gt = sample_ground_truth(gt_mesh.vertices, gt_mesh.faces, n_points=2_000, seed=0)
    flat = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float) * 0.1  # collinear: zero area
    assert evaluate_mesh(flat, np.array([[0, 1, 2]]), gt, THRESHOLDS).empty


def test_contains_matches_analytic_sphere_away_from_the_surface():
    sphere = _sphere(0.4)
    points = sample_box(50_000, -0.55, 0.55, seed=3)
    r = np.linalg.norm(points, axis=1)
    inside = contains(sphere.vertices, sphere.faces, points)
    clear = np.abs(r - 0.4) > 2e-3  # the tessellation deviates from the sphere by less than this
    np.testing.assert_array_equal(inside[clear], (r < 0.4)[clear])


def test_contains_handles_rays_through_edges_and_vertices():
    # Subdivided, each face has a vertex at its centre and edges along both diagonals and both axes:
    # grid points (none on the surface) send rays exactly through edges and vertices along every axis.
    cube = _cube(1.0).subdivide()
    g = np.linspace(-0.6, 0.6, 7)
    points = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    expected = np.all(np.abs(points) < 0.5, axis=1)
    np.testing.assert_array_equal(contains(cube.vertices, cube.faces, points), expected)


def test_volumetric_iou_and_surface_metrics_on_small_sets():
    assert volumetric_iou([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(1 / 3)
    assert volumetric_iou([0, 0], [0, 0]) == 1.0
    a = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.03], [1.0, 0.0, 0.0]])
    up = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    side = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    s = surface_metrics(a, up, b, side, [0.01, 0.05])
    assert s["accuracy"] == pytest.approx(0.015) and s["completeness"] == pytest.approx(0.015)
    assert s["chamfer_l1"] == pytest.approx(0.015)
    assert s["normal_consistency"] == pytest.approx(0.5)
    assert s["precision"] == [0.5, 1.0] and s["fscore"] == [0.5, 1.0]


def test_sampling_is_seeded_and_on_the_surface():
    sphere = _sphere(0.4)
    p1, n1 = sample_surface(sphere.vertices, sphere.faces, 1000, seed=7)
    p2, _ = sample_surface(sphere.vertices, sphere.faces, 1000, seed=7)
    p3, _ = sample_surface(sphere.vertices, sphere.faces, 1000, seed=8)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3)
    assert np.abs(np.linalg.norm(p1, axis=1) - 0.4).max() < 2e-3
    assert (np.einsum("ij,ij->i", n1, p1 / np.linalg.norm(p1, axis=1, keepdims=True)) > 0.99).all()  # outward
    with pytest.raises(ValueError, match="no surface area"):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)
