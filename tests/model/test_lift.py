"""The image lift: projection through the source camera, plane layout, and OpenLRM compatibility when off."""

import numpy as np
import pytest
import torch

from lrm_dist.geometry.cameras import camera_features, look_at_c2w
from lrm_dist.model.config import SIZES, LRMConfig, ModelConfig
from lrm_dist.model.lift import ImageLift, project_points
from lrm_dist.model.lrm import LRM
from lrm_dist.model.synthesizer import sample_triplane


def _source_camera(distance=2.5, focal=100.0, size=200):
    c2w = look_at_c2w(np.array([0.0, -distance, 0.0]))  # the canonical source pose
    return torch.tensor(camera_features(c2w, np.array([focal, focal, size / 2, size / 2, size, size])),
                        dtype=torch.float32)[None]


def test_project_points_matches_the_pinhole_model():
    cam = _source_camera()
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.25], [0.0, 1.0, -0.5]]])
    coords, depth = project_points(points, cam)
    assert depth[0].tolist() == pytest.approx([2.5, 2.5, 3.5])
    # u = cx + f x / d (pixels); x right, z up -> row up
    u = np.array([100, 100 + 100 * 0.5 / 2.5, 100]) / 200
    v = np.array([100, 100 - 100 * 0.25 / 2.5, 100 + 100 * 0.5 / 3.5]) / 200
    assert coords[0, :, 0].tolist() == pytest.approx((2 * u - 1).tolist(), abs=1e-6)
    assert coords[0, :, 1].tolist() == pytest.approx((2 * v - 1).tolist(), abs=1e-6)


def test_pooled_planes_follow_the_synthesizer_layout():
    """With cell features = the cell's position, every plane sampled at a point gives back its two coordinates."""
    lift = ImageLift(triplane_dim=6, resolution=8, width=8)

    class Position(torch.nn.Module):
        def forward(self, cell):
            xyz = cell[..., -3 * (1 + 2 * lift.frequencies):][..., :3]
            return torch.cat([xyz, torch.zeros(*xyz.shape[:-1], 5)], -1)

    lift.cell_mlp = Position()
    with torch.no_grad():  # keep the mean half of the pooled features: (x, y, z) of the cell
        lift.to_planes.weight.zero_()
        lift.to_planes.bias.zero_()
        for c in range(3):
            lift.to_planes.weight[c, c] = 1.0
    planes = lift(torch.rand(1, 3, 28, 28), _source_camera())
    assert planes.shape == (1, 3, 6, 8, 8)
    point = torch.tensor([[[0.375, -0.625, 0.125]]])  # a cell centre of the 8^3 grid
    feats = sample_triplane(planes, point)[0, 0].view(3, 6)[:, :3]
    x, y, z = point[0, 0].tolist()
    assert feats[0].tolist() == pytest.approx([x, y, 0.0], abs=1e-6)  # plane 0: (x, y), mean over z is 0
    assert feats[1].tolist() == pytest.approx([x, 0.0, z], abs=1e-6)  # plane 1: (x, z)
    assert feats[2].tolist() == pytest.approx([0.0, y, z], abs=1e-6)  # plane 2: (z, y)


def test_lift_makes_planes_depend_on_the_image():
    torch.manual_seed(0)
    model = LRM(ModelConfig(size="tiny").arch()).eval()
    cam = _source_camera(focal=30.0, size=56)
    white, dark = torch.ones(1, 3, 56, 56), torch.ones(1, 3, 56, 56)
    dark[..., 18:38, 18:38] = 0.2
    with torch.no_grad():
        diff = (model.forward_planes(white, cam) - model.forward_planes(dark, cam)).abs().mean()
    assert float(diff) > 0.05


def test_openlrm_architecture_has_no_lift_keys():
    assert not SIZES["small"].image_lift and "image_lift" not in SIZES["small"].hf_dict()
    with torch.device("meta"):
        keys = LRM(SIZES["small"]).state_dict().keys()
    assert not any(k.startswith("lift.") for k in keys)
    fresh = ModelConfig(size="tiny", architecture={"triplane_low_res": 4, "triplane_high_res": 8}).arch()
    assert fresh.image_lift and fresh.triplane_high_res == 8
    with pytest.raises(ValueError, match="model.architecture"):
        ModelConfig(architecture={"no_such_key": 1}).arch()
    assert LRMConfig(iso_level=1.5).surface_level() == 1.5 and LRMConfig().surface_level() == 3.0
