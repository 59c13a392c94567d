"""The lift's image encoders: output layout, receptive field, config switch, keys of saved models."""

import pytest
import torch

from lrm_dist.model.config import LRMConfig, ModelConfig
from lrm_dist.model.lift_encoder import UNetEncoder, conv_encoder, lift_encoder
from lrm_dist.model.lrm import LRM


@pytest.mark.parametrize("size", [56, 224, 60])
def test_both_encoders_give_width_channels_at_half_the_input_side(size):
    image = torch.rand(2, 3, size, size)
    for kind in ("conv", "unet"):
        out = lift_encoder(kind, 16)(image)
        assert out.shape == (2, 16, (size + 1) // 2, (size + 1) // 2), kind


def test_unet_features_see_the_whole_image_and_conv_features_do_not():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 112, 112, requires_grad=True)
    for encoder, whole in ((UNetEncoder(8), True), (conv_encoder(8), False)):
        image.grad = None
        encoder(image)[0, :, 28, 28].sum().backward()  # one feature at input pixel (56, 56)
        corner = image.grad.abs().sum(1)[0, :8, :8].sum()  # the far corner of the input
        assert (corner > 0) == whole


def test_the_encoder_is_a_config_switch_kept_in_saved_configs():
    assert LRMConfig().lift_encoder == "conv"  # configs saved before the switch existed load as they were built
    assert ModelConfig(size="small").arch().lift_encoder == "unet"  # fresh models get the U-Net,
    assert ModelConfig(size="tiny").arch().lift_encoder == "conv"  # tiny ones the small conv encoder
    unet = ModelConfig(size="tiny", lift_encoder="unet").arch()
    assert unet.hf_dict()["lift_encoder"] == "unet"
    assert "lift_encoder" not in ModelConfig(size="tiny", architecture={"lift_encoder": "conv"}).arch().hf_dict()
    with torch.device("meta"):
        keys = set(LRM(unet).state_dict())
    assert any(k.startswith("lift.cnn.down.") for k in keys) and "lift.cnn.0.weight" not in keys
    with pytest.raises(ValueError, match="lift_encoder"):
        ModelConfig(architecture={"lift_encoder": "resnet"}).arch()
    with pytest.raises(ValueError, match="unknown lift encoder"):
        lift_encoder("resnet", 8)


def test_a_wider_unet_keeps_the_lifts_feature_width_and_is_saved_in_the_config():
    encoder = lift_encoder("unet", 16, base=32)
    assert [stage[0][0].out_channels for stage in encoder.down] == [32, 64, 128, 128, 128]  # doubling up to 4x base
    assert encoder(torch.rand(1, 3, 56, 56)).shape == (1, 16, 28, 28)  # the output is still ``width`` wide
    assert [stage[0][0].out_channels for stage in UNetEncoder(16).down] == [16, 32, 64, 64, 64]  # base = width
    arch = ModelConfig(size="tiny", lift_encoder="unet", architecture={"lift_encoder_width": 24}).arch()
    assert arch.hf_dict()["lift_encoder_width"] == 24
    assert "lift_encoder_width" not in ModelConfig(size="tiny", lift_encoder="unet").arch().hf_dict()
    with torch.device("meta"):
        model = LRM(arch)
    assert model.lift.cnn.down[0][0][0].out_channels == 24 and model.lift.cnn.out.out_channels == 64
    with pytest.raises(ValueError, match="lift_encoder_width"):  # the conv encoder has no separate width
        ModelConfig(size="tiny", architecture={"lift_encoder_width": 24}).arch()
    with pytest.raises(ValueError, match="lift_encoder_width"):
        lift_encoder("conv", 16, base=32)
