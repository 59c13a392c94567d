"""The volume renderer against analytic fields and the project's camera conventions."""

from __future__ import annotations

import numpy as np
import torch

from lrm_dist.geometry.cameras import backproject_depth, intrinsics_from_fov, look_at_c2w, orbit_position, pixel_rays
from lrm_dist.model.renderer import camera_rays, importance_depths, ray_box, render_rays

CENTRE = torch.tensor([0.5, 0.0, 0.1])
RADIUS = 0.35


def sphere_field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An opaque red sphere at CENTRE (raw density 60 inside, -20 outside)."""
    inside = (points - CENTRE).norm(dim=-1) < RADIUS
    raw = torch.where(inside, torch.tensor(60.0), torch.tensor(-20.0))
    rgb = torch.zeros(*points.shape[:-1], 3)
    rgb[..., 0] = 1.0
    return rgb, raw


def _camera(azimuth: float, elevation: float, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    return look_at_c2w(orbit_position(2.5, azimuth, elevation)), intrinsics_from_fov(45.0, size, size)


def _render(c2w: np.ndarray, intr: np.ndarray, samples: int = 128):
    k = torch.tensor(intr[:4] / np.array([intr[4], intr[5], intr[4], intr[5]]), dtype=torch.float32)
    o, d, cos = camera_rays(torch.tensor(c2w, dtype=torch.float32)[None, None], k[None, None], int(intr[5]), int(intr[4]))
    comp = render_rays(sphere_field, o[:, 0], d[:, 0], samples, jitter=False)
    h, w = int(intr[5]), int(intr[4])
    return comp.opacity.view(h, w).numpy(), (comp.distance * cos[:, 0]).view(h, w).numpy(), comp.rgb.view(h, w, 3).numpy()


def test_rays_match_the_project_camera_convention():
    c2w, intr = _camera(35.0, 20.0, 16)
    k = torch.tensor(intr[:4] / np.array([16, 16, 16, 16]), dtype=torch.float32)
    o, d, _ = camera_rays(torch.tensor(c2w, dtype=torch.float32)[None, None], k[None, None], 16, 16)
    ref_o, ref_d = pixel_rays(c2w, intr)
    np.testing.assert_allclose(d[0, 0].numpy(), ref_d.reshape(-1, 3), atol=1e-6)
    np.testing.assert_allclose(o[0, 0].numpy(), ref_o.reshape(-1, 3), atol=1e-6)


def test_frontal_view_sees_object_right_and_up_where_blender_would():
    opacity, _, rgb = _render(*_camera(0.0, 0.0))
    # The sphere sits at +x (camera right) and slightly +z (camera up, i.e. image rows above the centre).
    cols = np.nonzero(opacity.max(0) > 0.5)[0]
    rows = np.nonzero(opacity.max(1) > 0.5)[0]
    assert cols.min() > 24 and rows.mean() < 24
    assert opacity.max() > 0.99 and opacity.min() < 1e-3
    assert np.allclose(rgb[opacity > 0.99], [1.0, 0.0, 0.0], atol=1e-2)


def test_depth_is_planar_and_backprojects_onto_the_surface():
    for azimuth, elevation in ((0.0, 0.0), (70.0, 30.0), (200.0, -20.0)):
        c2w, intr = _camera(azimuth, elevation)
        opacity, depth, _ = _render(c2w, intr)
        points = backproject_depth(depth, c2w, intr)[opacity > 0.999]
        assert len(points) > 20
        radii = np.linalg.norm(points - CENTRE.numpy(), axis=-1)
        np.testing.assert_allclose(radii, RADIUS, atol=0.03)


def test_ray_box_clips_and_flags_misses():
    o = torch.tensor([[[0.0, -3.0, 0.0], [0.0, -3.0, 5.0], [0.2, 0.1, 0.0]]])
    d = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    near, far = ray_box(o, d)
    torch.testing.assert_close(near, torch.tensor([[2.0, 0.0, 0.0]]))
    torch.testing.assert_close(far, torch.tensor([[4.0, 0.0, 0.8]]))


def test_importance_samples_concentrate_where_the_weight_is():
    depths = torch.linspace(0.0, 1.0, 33).expand(1, 1, 33)
    weights = torch.zeros(1, 1, 32)
    weights[..., 20] = 1.0
    t = importance_depths(depths, weights, 64, jitter=False)
    inside = ((t >= depths[..., 19]) & (t <= depths[..., 22])).float().mean()
    assert inside > 0.6
    assert torch.all(t[..., 1:] >= t[..., :-1])
