"""Loss values on known inputs; the perceptual loss from a weights file written here."""

import pytest
import torch

from lrm_dist.train.config import LossConfig
from lrm_dist.train.losses import LossFn, mask_loss, pixel_loss, tv_loss
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
    total, terms = fn(rgb, opacity, planes, target, alpha)
    assert set(terms) == {"pixel", "mask", "tv"}
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
