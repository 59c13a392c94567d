"""Inputs prepared as training prepares them, and predictions mapped back into the object frame."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lrm_dist.eval.reconstruct import PreparedInput, prepare_input, reconstruct_meshes
from lrm_dist.geometry.cameras import object_to_model_frame
from lrm_dist.geometry.cameras import camera_features, canonicalize_poses, intrinsics_from_fov, look_at_c2w, orbit_position


def _orbit(*views: tuple[float, float, float]) -> np.ndarray:
    return np.stack([look_at_c2w(orbit_position(d, az, el)) for d, az, el in views])


@pytest.mark.parametrize("distance", [None, 2.0])
def test_object_to_model_frame_is_what_canonicalize_poses_does_to_the_world(distance):
    c2w = _orbit((2.6, 70.0, 25.0), (2.4, 200.0, -10.0), (2.8, 10.0, 40.0))
    for source in range(3):
        m = object_to_model_frame(c2w, source, distance)
        poses = canonicalize_poses(c2w, source_index=source, distance=distance)
        centres = c2w[:, :3, 3] @ m[:3, :3].T + m[:3, 3]
        np.testing.assert_allclose(centres, poses[:, :3, 3], atol=1e-9)
        scale = np.cbrt(np.linalg.det(m[:3, :3]))
        np.testing.assert_allclose(m[:3, :3] / scale @ c2w[:, :3, :3], poses[:, :3, :3], atol=1e-9)
        np.testing.assert_allclose(poses[source, :3, 3], [0.0, -(distance or np.linalg.norm(c2w[source, :3, 3])), 0.0], atol=1e-9)


def test_prepare_input_matches_the_training_source_view():
    c2w = _orbit((2.6, 0.0, 0.0), (2.6, 90.0, 20.0))
    k = np.tile(intrinsics_from_fov(47.5, 32, 32), (2, 1))
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (255, 0, 0, 255)
    p = prepare_input(rgba, c2w, k, source_size=28, source_index=1, source_distance=2.0)
    assert p.image.shape == (3, 28, 28) and p.image.dtype == np.float32
    np.testing.assert_allclose(p.image[:, 0, 0], [1.0, 1.0, 1.0])      # transparent -> white
    np.testing.assert_allclose(p.image[:, 14, 14], [1.0, 0.0, 0.0], atol=1e-6)
    expected = camera_features(canonicalize_poses(c2w, source_index=1, distance=2.0)[1], k[1])
    np.testing.assert_allclose(p.camera, expected, atol=1e-6)
    frontal = prepare_input(rgba, c2w, k, 28, source_index=0)  # view 0 is canonical already: identity
    np.testing.assert_allclose(frontal.model_to_object, np.eye(4), atol=1e-9)
    upright = prepare_input(rgba, c2w, k, 28, source_index=1, source_distance=2.0, frame="upright")
    expected = camera_features(canonicalize_poses(c2w, source_index=1, distance=2.0, frame="upright")[1], k[1])
    np.testing.assert_allclose(upright.camera, expected, atol=1e-6)
    assert upright.camera[11] > 0.5  # the camera keeps its 20 degree elevation (z of its centre)
    np.testing.assert_allclose(np.linalg.inv(upright.model_to_object), object_to_model_frame(c2w, 1, 2.0, "upright"))
    with pytest.raises(ValueError, match="uint8"):
        prepare_input(rgba.astype(np.float32), c2w, k, 28)
    rgba.setflags(write=False)  # as decoded views arrive from Ray's object store
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about wrapping non-writable arrays
        np.testing.assert_array_equal(prepare_input(rgba, c2w, k, 28, source_index=1, source_distance=2.0).image, p.image)


def test_reconstruct_meshes_maps_back_to_the_object_frame_and_reports_empty(tiny_checkpoint):
    from lrm_dist.model.pretrained import from_pretrained
    from lrm_dist.reconstruct.extract import density_grid

    model = from_pretrained(tiny_checkpoint)
    rgba = np.zeros((56, 56, 4), np.uint8)
    rgba[10:40, 12:44] = (30, 160, 90, 255)
    c2w = _orbit((2.6, 0.0, 0.0))
    k = intrinsics_from_fov(47.5, 56, 56)[None]
    base = prepare_input(rgba, c2w, k, model.source_size)
    with torch.no_grad():
        planes = model.forward_planes(torch.from_numpy(base.image)[None], torch.from_numpy(base.camera)[None])
        level = float(density_grid(model.synthesizer, planes[0], 20).median())
    turn = object_to_model_frame(_orbit((2.6, 90.0, 0.0)))  # a quarter turn about z
    rotated = PreparedInput(base.image, base.camera, np.linalg.inv(turn))
    device = torch.device("cpu")
    a, b = reconstruct_meshes(model, [base, rotated], 20, level, device)
    assert a.empty_reason is None and len(a.faces) > 0 and a.colors.shape == (len(a.vertices), 4)
    # The field lives in [-1, 1]^3; the zero padding that closes the surface adds at most one grid cell.
    assert np.abs(a.vertices).max() <= 1.0 + 2.0 / 19 + 1e-5
    inv = np.linalg.inv(turn)
    np.testing.assert_allclose(b.vertices, a.vertices @ inv[:3, :3].T + inv[:3, 3], atol=1e-5)
    (empty,) = reconstruct_meshes(model, [base], 20, 1e6, device)
    assert len(empty.faces) == 0 and "no surface" in empty.empty_reason
    # the mesher is serving's choice: surface nets give another mesh of the same surface
    (nets,) = reconstruct_meshes(model, [base], 20, level, device, mesher="surface_nets")
    assert len(nets.faces) > 0 and len(nets.vertices) != len(a.vertices)
    np.testing.assert_allclose(nets.vertices.mean(0), a.vertices.mean(0), atol=0.1)
