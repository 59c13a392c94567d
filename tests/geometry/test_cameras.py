import numpy as np
import pytest

from lrm_dist.geometry import cameras as C


def test_frontal_orbit_is_at_minus_y_looking_at_origin():
    eye = C.orbit_position(2.0, 0.0, 0.0)
    assert np.allclose(eye, [0, -2, 0])
    c2w = C.look_at_c2w(eye)
    assert np.allclose(-c2w[:3, 2], [0, 1, 0])  # looks down -z = towards +y
    assert np.allclose(c2w[:3, 1], [0, 0, 1])  # up is z
    assert np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3))


def test_canonicalize_puts_source_at_minus_y():
    rng = np.random.default_rng(0)
    poses = np.stack([C.look_at_c2w(C.orbit_position(d, a, e)) for d, a, e in
                      zip(rng.uniform(1.5, 2.5, 5), rng.uniform(0, 360, 5), rng.uniform(-30, 60, 5))])
    out = C.canonicalize_poses(poses)
    d = np.linalg.norm(poses[0, :3, 3])
    assert np.allclose(out[0], C.look_at_c2w(np.array([0, -d, 0])), atol=1e-9)
    # relative poses are preserved (a rigid change of frame)
    rel_in = np.linalg.inv(poses[0]) @ poses[3]
    rel_out = np.linalg.inv(out[0]) @ out[3]
    assert np.allclose(rel_in, rel_out, atol=1e-9)


def test_backproject_and_rays_agree_with_a_plane():
    # a camera at (0,-2,0) looking at the plane y=0: planar depth is 2 everywhere
    c2w = C.look_at_c2w(np.array([0.0, -2.0, 0.0]))
    K = C.intrinsics_from_fov(40, 8, 6)
    pts = C.backproject_depth(np.full((6, 8), 2.0), c2w, K)
    assert np.allclose(pts[..., 1], 0.0)
    origins, dirs = C.pixel_rays(c2w, K)
    t = 2.0 / dirs[..., 1]
    assert np.allclose(origins + dirs * t[..., None], pts)
    # the principal point projects to the image centre
    assert np.allclose(pts[..., [0, 2]].mean(axis=(0, 1)), 0, atol=1e-9)


def test_opencv_conversion_flips_y_and_z():
    c2w = C.look_at_c2w(np.array([0.0, -2.0, 0.0]))
    cv = C.opengl_to_opencv(c2w)
    assert np.allclose(cv[:3, 2], [0, 1, 0])  # OpenCV looks down +z


def test_camera_features_layout():
    c2w = C.look_at_c2w(np.array([0.0, -2.0, 0.0]))
    K = C.intrinsics_from_fov(50, 64, 32)
    f = C.camera_features(c2w, K)
    assert f.shape == (16,)
    assert np.allclose(f[:12], c2w[:3].reshape(-1))
    assert np.allclose(f[12:], [K[0] / 64, K[1] / 32, 0.5, 0.5])
    g = C.render_camera_features(np.stack([c2w, c2w]), np.stack([K, K]))
    assert g.shape == (2, 25) and np.isclose(g[0, -1], 1.0)


def test_upright_frame_turns_about_the_vertical_only_and_keeps_the_elevation():
    rng = np.random.default_rng(1)
    poses = np.stack([C.look_at_c2w(C.orbit_position(d, a, e)) for d, a, e in
                      zip(rng.uniform(1.5, 2.5, 4), rng.uniform(0, 360, 4), rng.uniform(-30, 60, 4))])
    d, elevation = np.linalg.norm(poses[0, :3, 3]), np.degrees(np.arcsin(poses[0, 2, 3] / np.linalg.norm(poses[0, :3, 3])))
    out = C.canonicalize_poses(poses, frame="upright")
    assert np.allclose(out[0], C.look_at_c2w(C.orbit_position(d, 0.0, elevation)), atol=1e-9)
    assert np.allclose(out[:, 2, 3], poses[:, 2, 3])  # heights unchanged: the object stays z-up
    rel_in, rel_out = np.linalg.inv(poses[0]) @ poses[2], np.linalg.inv(out[0]) @ out[2]
    assert np.allclose(rel_in, rel_out, atol=1e-9)
    for frame in C.FRAMES:  # the object -> model map moves camera centres exactly as the poses move
        m = C.object_to_model_frame(poses, 0, 2.0, frame)
        assert np.allclose((poses[:, :3, 3] @ m[:3, :3].T + m[:3, 3]), C.canonicalize_poses(poses, 0, 2.0, frame)[:, :3, 3])
    up = C.object_to_model_frame(poses, 0, None, "upright")[:3, :3] @ np.array([0.0, 0.0, 1.0])
    assert np.allclose(up, [0, 0, 1])
    with pytest.raises(ValueError, match="unknown model frame"):
        C.canonicalize_poses(poses, frame="tilted")
