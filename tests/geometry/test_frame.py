import numpy as np
import trimesh

from lrm_dist.geometry.frame import (
    CANONICAL_HALF_EXTENT, Y_UP_TO_Z_UP, canonical_to_eval, normalization_for, normalize_mesh, to_z_up,
)


def test_y_up_to_z_up_matches_blender_import():
    # glTF (x, y, z) becomes Blender (x, -z, y)
    p = np.array([1.0, 2.0, 3.0, 1.0])
    assert np.allclose(Y_UP_TO_Z_UP @ p, [1.0, -3.0, 2.0, 1.0])


def test_normalize_centres_and_scales():
    box = trimesh.creation.box(extents=[2.0, 1.0, 4.0])
    box.apply_translation([5, -3, 1])
    out, norm = normalize_mesh(box)
    assert np.allclose(out.bounds.mean(axis=0), 0)
    assert np.isclose((out.bounds[1] - out.bounds[0]).max(), 2 * CANONICAL_HALF_EXTENT)
    assert np.allclose(norm.apply(box.vertices), out.vertices)


def test_to_z_up_rotates_y_up_mesh():
    tall = trimesh.creation.box(extents=[1.0, 3.0, 1.0])  # tall along y (glTF up)
    z_up = to_z_up(tall, "y")
    assert np.allclose(z_up.extents, [1.0, 1.0, 3.0])


def test_eval_cube():
    pts = np.array([[CANONICAL_HALF_EXTENT, -CANONICAL_HALF_EXTENT, 0]])
    assert np.allclose(canonical_to_eval(pts), [[0.5, -0.5, 0]])


def test_degenerate_bounds_rejected():
    import pytest

    with pytest.raises(ValueError, match="degenerate"):
        normalization_for(np.zeros((2, 3)))
