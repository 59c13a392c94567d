"""The volume refiner: starts as the identity, sees beyond one cell, and is part of the config and the keys."""

import pytest
import torch

from lrm_dist.model.config import LRMConfig, ModelConfig
from lrm_dist.model.lrm import LRM
from lrm_dist.model.volume_refiner import VolumeRefiner


def test_a_fresh_refiner_is_the_identity_and_its_gradient_reaches_every_layer():
    torch.manual_seed(0)
    refiner = VolumeRefiner(8)
    volume = torch.randn(2, 8, 16, 16, 16, requires_grad=True)
    out = refiner(volume)
    assert torch.equal(out, volume)
    out.square().sum().backward()
    assert refiner.out.weight.grad.abs().sum() > 0  # the zero layer learns first, then the rest follows


def test_a_trained_refiner_mixes_neighbouring_cells():
    torch.manual_seed(0)
    refiner = VolumeRefiner(4)
    torch.nn.init.normal_(refiner.out.weight)
    impulse = torch.zeros(1, 4, 16, 16, 16)
    impulse[0, :, 8, 8, 8] = 1.0
    base = refiner(torch.zeros_like(impulse))
    change = (refiner(impulse) - base - impulse).abs().sum(1)[0]
    # a cell 6 away (beyond one 3x3x3 layer, within the coarse scales) feels the impulse
    assert change[8, 8, 14] > 1e-4 and change[2, 8, 8] > 1e-4
    with pytest.raises(ValueError, match="multiple of 4"):
        refiner(torch.zeros(1, 4, 10, 10, 10))


def test_refine_is_a_config_switch_with_its_own_keys():
    plain = ModelConfig(size="tiny", lift_refine=False).arch()
    refined = ModelConfig(size="tiny").arch()  # the default for fresh models
    assert refined.lift_refine and "lift_refine" in refined.hf_dict() and "lift_refine" not in plain.hf_dict()
    assert not ModelConfig(size="tiny", image_lift=False).arch().lift_refine  # no lift, nothing to refine
    with pytest.raises(ValueError, match="needs image_lift"):
        LRMConfig(lift_refine=True)
    keys = set(LRM(refined).state_dict()) - set(LRM(plain).state_dict())
    assert keys and all(k.startswith("lift.refiner.") for k in keys)
    model = LRM(refined).eval()
    image, camera = torch.rand(2, 3, 56, 56), torch.randn(2, 16)
    with torch.no_grad():
        assert model.forward_planes(image, camera).shape == LRM(plain).forward_planes(image, camera).shape
