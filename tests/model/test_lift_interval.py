"""``lift_interval``: each field point tested against the lift's depth layers at its own projection."""

import numpy as np
import pytest
import torch

from lrm_dist.geometry.cameras import camera_features, look_at_c2w
from lrm_dist.model.config import LRMConfig, ModelConfig
from lrm_dist.model.lift import interval_features, pack, unpack, unpack_interval
from lrm_dist.model.lrm import LRM
from lrm_dist.model.pretrained import from_pretrained, save_pretrained


def _camera(distance=2.0, focal=30.0, size=56):
    c2w = look_at_c2w(np.array([0.0, -distance, 0.0]))  # the canonical source pose, looking along +y
    return torch.tensor(camera_features(c2w, np.array([focal, focal, size / 2, size / 2, size, size])),
                        dtype=torch.float32)[None]


def _models(seed=0):
    """A tiny model with lift_interval and the same model without it, sharing every other weight."""
    torch.manual_seed(seed)
    with_interval = LRM(ModelConfig(size="tiny", architecture={"lift_interval": True}).arch()).eval()
    plain = LRM(ModelConfig(size="tiny").arch()).eval()
    missing, unexpected = plain.load_state_dict(with_interval.state_dict(), strict=False)
    assert missing == [] and unexpected == ["synthesizer.interval_proj.weight"]
    return with_interval, plain


def test_pack_keeps_layers_and_camera_exactly():
    planes, volume = torch.randn(2, 3, 4, 8, 8, dtype=torch.bfloat16), torch.randn(2, 4, 8, 8, 8)
    layers, camera = 2.0 + torch.rand(2, 2, 14, 14) / 3, torch.randn(2, 16)
    packed = pack(planes, volume, (layers, camera))
    assert packed.dtype == torch.float32 and packed.shape == (2, 3 + 8 + 2, 4, 8, 8)  # 16 + 392 numbers: 2 slices
    back_planes, back_volume = unpack(packed)
    assert torch.equal(back_planes, planes.float()) and torch.equal(back_volume, volume)
    back_layers, back_camera = unpack_interval(packed, 14)
    assert torch.equal(back_layers, layers) and torch.equal(back_camera, camera)
    assert unpack_interval(pack(planes, volume), 14) is None and unpack_interval(planes, 14) is None


def test_interval_features_known_answer():
    """Camera at (0, -2, 0) looking along +y; front layer at depth 1.8, back at 2.2 over the whole image."""
    layers = torch.tensor([1.8, 2.2]).view(1, 2, 1, 1).expand(1, 2, 14, 14).contiguous()
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.0, -0.15, 0.1], [0.0, 0.5, 0.0], [0.0, -0.5, 0.0],
                            [3.0, 0.0, 0.0]]])  # inside; just behind the front; past the back; before the front; off-image
    feats = interval_features(layers, _camera(), points, exact=True)[0]
    between, behind, before = feats.unbind(-1)
    sig = lambda x: 1 / (1 + np.exp(-x / 0.03))  # noqa: E731
    assert between[0] == pytest.approx(sig(0.2) ** 2, abs=1e-5)  # 0.2 inside both layers: 0.9975
    assert between[1] == pytest.approx(sig(0.05) * sig(0.35), abs=1e-5)  # depth 1.85: 0.05 behind the front
    assert between[2] < 1e-3 and between[3] < 1e-3
    assert behind[0] == pytest.approx(np.tanh(2.0), abs=1e-4) and before[0] == pytest.approx(np.tanh(2.0), abs=1e-4)
    assert behind[3] == pytest.approx(np.tanh(-3.0), abs=1e-4) and before[2] == pytest.approx(np.tanh(-3.0), abs=1e-4)
    assert torch.equal(feats[4], torch.zeros(3))  # projects outside the image: no evidence either way
    # the row sampler (the training path) reads the same layers
    assert torch.allclose(interval_features(layers, _camera(), points)[0], feats, atol=1e-6)


def test_interval_model_starts_as_the_model_without_it_and_learns_the_interval():
    with_interval, plain = _models()
    image, cam = torch.rand(2, 3, 56, 56), _camera().expand(2, -1)
    points = torch.rand(2, 500, 3) * 2 - 1
    planes = with_interval.forward_planes(image, cam)
    assert with_interval.synthesizer.interval_side == 28  # the tiny model's 56 px input, layers at half of it
    assert planes.shape[1] > 3 + 16
    packed_layers, packed_camera = unpack_interval(planes, 28)
    assert torch.equal(packed_layers, with_interval._planes(image, cam)[1]) and torch.equal(packed_camera, cam)
    with torch.no_grad():
        same = plain.synthesizer.density(plain.forward_planes(image, cam), points)
    assert torch.allclose(with_interval.synthesizer.density(planes, points), same, atol=1e-6)  # zero-initialised
    # the new weights get a gradient from the field's losses, and once non-zero the layers get one through them
    _, raw = with_interval.synthesizer.field(planes, points)
    raw.square().mean().backward()
    assert with_interval.synthesizer.interval_proj.weight.grad.abs().sum() > 0
    layers, camera = unpack_interval(planes.detach(), 28)
    layers.requires_grad_(True)
    with torch.no_grad():
        with_interval.synthesizer.interval_proj.weight.fill_(1.0)
    packed = pack(*unpack(planes.detach()), (layers, camera))
    with_interval.synthesizer.field(packed, points)[1].sum().backward()
    assert layers.grad.abs().sum() > 0


def test_meshing_grid_reads_the_interval_like_the_field():
    from lrm_dist.reconstruct.extract import density_grid

    with_interval, _ = _models(seed=1)
    with torch.no_grad():
        with_interval.synthesizer.interval_proj.weight.normal_()
        planes = with_interval.forward_planes(torch.rand(1, 3, 56, 56), _camera())
        grid = density_grid(with_interval.synthesizer, planes[0], 9, chunk=2 * 81)
        c = torch.linspace(-1, 1, 9)
        points = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).view(1, -1, 3)
        direct = with_interval.synthesizer.density(planes, points).view(9, 9, 9)
    assert torch.allclose(grid, direct, atol=1e-5)


def test_config_needs_the_lift_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="lift_interval"):
        LRMConfig(lift_interval=True)
    assert "lift_interval" not in ModelConfig(size="tiny").arch().hf_dict()
    model, _ = _models()
    assert model.config.hf_dict()["lift_interval"] is True
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(str(tmp_path / "m")).eval()
    assert loaded.config.lift_interval and torch.equal(loaded.synthesizer.interval_proj.weight,
                                                       model.synthesizer.interval_proj.weight)
