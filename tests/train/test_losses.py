"""Loss values on known inputs; the perceptual loss from a weights file written here."""

import math

import numpy as np
import pytest
import torch

from lrm_dist.train.config import LossConfig
from lrm_dist.model.renderer import activate_density
from lrm_dist.train.calibrate import IsoCalibrator, best_iso_level
from lrm_dist.train.losses import (
    OCCUPANCY_LOGIT_OFFSET, LossFn, depth_loss, depth_normals, layers_loss, mask_loss, normal_loss, occupancy_loss, pixel_loss, tv_loss,
)
from lrm_dist.train.perceptual import PerceptualLoss, _vgg16_features


def test_pixel_and_mask_losses():
    a = torch.zeros(2, 3, 3, 4, 4)
    b = torch.full_like(a, 0.5)
    assert float(pixel_loss(a, b)) == pytest.approx(0.25)
    assert float(mask_loss(torch.ones(1, 1, 1, 2, 2), torch.tensor([1.0, 0, 0, 0]).view(1, 1, 1, 2, 2))) == pytest.approx(0.75)


def test_tv_loss_of_a_ramp():
    ramp = torch.arange(4.0).view(1, 1, 1, 1, 4).expand(1, 3, 2, 4, 4)  # +1 per column, constant down rows
    assert float(tv_loss(ramp)) == pytest.approx(1.0)
    assert float(tv_loss(torch.ones(1, 3, 2, 5, 5))) == 0.0


def test_loss_fn_weights_and_disabled_perceptual(caplog):
    cfg = LossConfig(pixel=2.0, perceptual=1.0, mask=0.5, tv=0.1)
    fn = LossFn(cfg)
    assert not fn.perceptual_enabled
    rgb, target = torch.zeros(1, 2, 3, 4, 4), torch.full((1, 2, 3, 4, 4), 0.5)
    opacity, alpha = torch.ones(1, 2, 1, 4, 4), torch.zeros(1, 2, 1, 4, 4)
    planes = torch.arange(4.0).view(1, 1, 1, 1, 4).expand(1, 3, 2, 4, 4)
    out = {"rgb": rgb, "opacity": opacity, "planes": planes}
    total, terms = fn(out, {"render_image": target, "render_alpha": alpha})
    assert set(terms) == {"pixel", "mask", "tv"}  # no depth or occupancy members: those terms are off
    assert terms == pytest.approx({"pixel": 0.25, "mask": 1.0, "tv": 1.0})
    assert float(total) == pytest.approx(2.0 * 0.25 + 0.5 * 1.0 + 0.1 * 1.0)


def test_perceptual_loss_from_a_weights_file(tmp_path):
    torch.manual_seed(0)
    features = _vgg16_features()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()} | {"classifier.0.weight": torch.zeros(1)},
               tmp_path / "vgg16.pth")
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate([64, 128, 256, 512, 512])}
    torch.save(lin, tmp_path / "lin.pth")
    loss = PerceptualLoss(tmp_path / "vgg16.pth", tmp_path / "lin.pth")
    assert torch.equal(loss.linear[2], lin["lin2.model.1.weight"])
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = torch.rand(2, 3, 32, 32)
    assert float(loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    d = loss(x, y)
    assert float(d.detach()) > 0
    d.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())
    fn = LossFn(LossConfig(perceptual_weights=str(tmp_path / "vgg16.pth")))
    assert fn.perceptual_enabled


def test_perceptual_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="perceptual weights"):
        PerceptualLoss(tmp_path / "missing.pth")
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="features"):
        PerceptualLoss(tmp_path / "bad.pth")


def test_occupancy_logit_is_even_at_the_default_iso_level():
    assert float(activate_density(torch.tensor(OCCUPANCY_LOGIT_OFFSET))) == pytest.approx(3.0, rel=1e-6)


def test_occupancy_loss_known_values_and_mask():
    raw = torch.tensor([[OCCUPANCY_LOGIT_OFFSET, OCCUPANCY_LOGIT_OFFSET + 100.0, OCCUPANCY_LOGIT_OFFSET - 100.0, 0.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last point is ignored
    # ln 2 for the undecided point, ~0 for the two confident right ones, averaged over 3 points
    assert float(occupancy_loss(raw, labels, mask)) == pytest.approx(math.log(2) / 3, abs=1e-6)
    wrong = occupancy_loss(raw[:, 1:3], 1 - labels[:, 1:3], mask[:, 1:3])
    assert float(wrong) == pytest.approx(100.0, rel=1e-3)
    assert float(occupancy_loss(raw, labels, torch.zeros_like(mask))) == 0.0  # no labelled points: no term


def test_depth_loss_only_on_masked_pixels():
    depth = torch.full((1, 2, 1, 2, 2), 2.0)
    target = torch.tensor([2.5, 1.0, 9.0, 9.0]).view(1, 1, 1, 2, 2).expand(1, 2, 1, 2, 2)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 2, 2).expand(1, 2, 1, 2, 2)
    assert float(depth_loss(depth, target, mask)) == pytest.approx(0.75)


def _plane_depth(normal, offset, intrinsics, side):
    """Planar depth of the plane n . p = offset (OpenGL camera frame) through each pixel centre."""
    fx, fy, cx, cy = intrinsics[:4]
    v, u = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5, indexing="ij")
    ray = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], -1)  # point at planar depth d: d * ray
    return offset / (ray @ np.asarray(normal))


def test_normals_of_a_tilted_plane_and_the_normal_loss():
    intrinsics = np.array([20.0, 20.0, 8.0, 8.0, 16.0, 16.0])
    normal = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])  # facing the camera (+z in OpenGL)
    depth = torch.tensor(_plane_depth(normal, -2.0, intrinsics, 16), dtype=torch.float32).view(1, 1, 1, 16, 16)
    k = torch.tensor(intrinsics, dtype=torch.float32).view(1, 1, 6)
    got = depth_normals(depth, k)
    assert got.shape == (1, 1, 3, 15, 15)
    assert torch.allclose(got, torch.tensor(normal, dtype=torch.float32).view(1, 1, 3, 1, 1), atol=1e-4)
    target = torch.tensor(normal, dtype=torch.float32).view(1, 1, 3, 1, 1).expand(1, 1, 3, 16, 16)
    mask = torch.ones(1, 1, 1, 16, 16)
    assert float(normal_loss(depth, k, target, mask)) == pytest.approx(0.0, abs=1e-5)
    assert float(normal_loss(depth, k, -target, mask)) == pytest.approx(2.0, abs=1e-4)  # opposite normals
    mask[..., :8] = 0  # only pixels whose right and lower neighbours are in the mask count
    half = target.clone()
    half[..., 8:] = -half[..., 8:]
    assert float(normal_loss(depth, k, half, mask)) == pytest.approx(2.0, abs=1e-4)
    depth.requires_grad_(True)
    normal_loss(depth, k, torch.roll(target, 1, dims=2), torch.ones(1, 1, 1, 16, 16)).backward()
    assert torch.isfinite(depth.grad).all() and depth.grad.abs().sum() > 0


def test_layers_loss_known_values():
    """Hit pixels: |front - first| + |back - last|; missed pixels: the predicted thickness; mean over all pixels."""
    front = torch.tensor([2.0, 2.0, 3.0, 3.0]).view(1, 1, 2, 2)
    back = torch.tensor([2.5, 2.0, 3.5, 3.0]).view(1, 1, 2, 2)
    first = torch.tensor([2.0, 1.5, 0.0, 0.0]).view(1, 1, 2, 2)
    last = torch.tensor([3.0, 2.0, 0.0, 0.0]).view(1, 1, 2, 2)
    hit = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert float(layers_loss(front, back, first, last, hit)) == pytest.approx((0.5 + 0.5 + 0.5 + 0.0) / 4)
    assert float(layers_loss(front, front + 1.0, first, first + 1.0, hit)) == pytest.approx((0.0 + 1.0 + 1.0 + 1.0) / 4)
    with pytest.raises(ValueError, match="do not match"):
        layers_loss(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), first, last, hit)


def test_loss_fn_geometry_terms():
    fn = LossFn(LossConfig(pixel=1.0, perceptual=0.0, mask=0.0, tv=0.0, depth=2.0, occupancy=3.0))
    assert fn.needs_points
    shape = (1, 1, 3, 2, 2)
    out = {"rgb": torch.zeros(shape), "opacity": torch.zeros(1, 1, 1, 2, 2), "planes": torch.zeros(1, 3, 1, 2, 2),
           "depth": torch.ones(1, 1, 1, 2, 2), "points_raw_density": torch.full((1, 2), OCCUPANCY_LOGIT_OFFSET)}
    batch = {"render_image": torch.zeros(shape), "render_alpha": torch.zeros(1, 1, 1, 2, 2),
             "render_depth": torch.full((1, 1, 1, 2, 2), 1.5), "render_depth_mask": torch.ones(1, 1, 1, 2, 2),
             "occupancy_labels": torch.tensor([[0.0, 1.0]]), "occupancy_mask": torch.ones(1, 2)}
    total, terms = fn(out, batch)
    assert terms == pytest.approx({"pixel": 0.0, "depth": 0.5, "occupancy": math.log(2)})
    assert float(total) == pytest.approx(2.0 * 0.5 + 3.0 * math.log(2))


def test_iso_level_calibration_recovers_the_labelling_threshold():
    torch.manual_seed(0)
    raw = torch.randn(20000) * 4
    labels = (raw > 2.5).float()
    level = best_iso_level(raw, labels)
    assert level == pytest.approx(float(activate_density(torch.tensor(2.5))), rel=0.05)
    assert best_iso_level(raw, torch.zeros_like(raw)) is None  # nothing inside: no calibration
    calib = IsoCalibrator(keep=2)
    calib.add(torch.full((1, 4), -9.0), torch.zeros(1, 4), torch.ones(1, 4))  # dropped: only the last 2 kept
    calib.add(raw[:10000].view(1, -1), labels[:10000].view(1, -1), torch.ones(1, 10000))
    calib.add(raw[10000:].view(1, -1), labels[10000:].view(1, -1), torch.ones(1, 10000))
    assert calib.iso_level() == pytest.approx(level, rel=0.05)


def test_source_framing_records_what_training_saw():
    from lrm_dist.geometry.cameras import camera_features, look_at_c2w, orbit_position
    from lrm_dist.train.calibrate import SourceFraming
    from lrm_dist.train.sample import foreground_extent

    rgba = np.zeros((100, 80, 4), np.uint8)
    rgba[10:60, 20:45, 3] = 255  # 50 rows x 25 columns of object in a 100-pixel frame
    assert foreground_extent(rgba) == 0.5 and foreground_extent(np.zeros((8, 8, 4), np.uint8)) == 0.0
    framing = SourceFraming()
    assert framing.values() == {}
    cams = [camera_features(look_at_c2w(orbit_position(d, 0.0, 0.0)), np.array([f * 128, f * 128, 64, 64, 128, 128]))
            for d, f in ((2.4, 1.0), (2.8, 1.2), (9.0, 9.0))]
    # the third sample has an empty source frame: it does not count
    framing.add(torch.tensor(np.stack(cams), dtype=torch.float32), torch.tensor([0.4, 0.6, 0.0]))
    assert framing.values() == pytest.approx({"source_distance": 2.6, "source_focal": 1.1, "source_foreground_ratio": 0.5})

