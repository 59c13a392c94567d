"""The upsampler on image lists: RGBA/RGB/grey, uint8/uint16, alpha modes, outscale, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrm_dist.upscale.config import UpscaleConfig
from lrm_dist.upscale.engine import Upsampler


@pytest.fixture
def rgba():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (12, 10, 4), dtype=np.uint8)
    image[..., 3] = np.linspace(0, 255, 10, dtype=np.uint8)[None, :]  # a horizontal alpha ramp
    return image


def _upsampler(path, **kw) -> Upsampler:
    return Upsampler(UpscaleConfig(model=str(path), device="cpu", **kw))


def test_rgba_rgb_channels_match_rgb_input_and_alpha_modes(small_srvgg_file, rgba):
    up = _upsampler(small_srvgg_file, alpha="model")
    out_model = up.upscale_images([rgba])[0]
    out_rgb = up.upscale_images([np.ascontiguousarray(rgba[..., :3])])[0]
    assert out_model.shape == (48, 40, 4) and out_model.dtype == np.uint8
    np.testing.assert_array_equal(out_model[..., :3], out_rgb)
    # alpha through the network as grey RGB, then Real-ESRGAN's luma weights
    alpha = torch.from_numpy(rgba[..., 3]).float().div(255).expand(1, 3, -1, -1)
    with torch.no_grad():
        net_alpha = up.upscale_tensor(alpha)[0]
    luma = (0.299 * net_alpha[0] + 0.587 * net_alpha[1] + 0.114 * net_alpha[2]).clamp(0, 1).mul(255).round()
    np.testing.assert_array_equal(out_model[..., 3], luma.numpy().astype(np.uint8))

    up_bilinear = _upsampler(small_srvgg_file, alpha="bilinear")
    out_bilinear = up_bilinear.upscale_images([rgba])[0]
    ref = F.interpolate(torch.from_numpy(rgba[..., 3]).float()[None, None] / 255, size=(48, 40), mode="bilinear")
    np.testing.assert_array_equal(out_bilinear[..., 3], ref[0, 0].mul(255).round().numpy().astype(np.uint8))
    np.testing.assert_array_equal(out_bilinear[..., :3], out_rgb)


def test_batching_keeps_order_and_results(small_srvgg_file, rgba):
    up = _upsampler(small_srvgg_file, batch_size=2)
    other = np.ascontiguousarray(rgba[:8, :6])
    alone = up.upscale_images([rgba])[0]
    many = up.upscale_images([rgba, other, rgba, rgba])
    assert [m.shape for m in many] == [(48, 40, 4), (32, 24, 4), (48, 40, 4), (48, 40, 4)]
    for m in (many[0], many[2], many[3]):
        np.testing.assert_array_equal(m, alone)


def test_grey_uint16_and_outscale(small_srvgg_file):
    up = _upsampler(small_srvgg_file, outscale=2.0)
    grey16 = (np.arange(9 * 7, dtype=np.uint16).reshape(9, 7) * 1000)
    out = up.upscale_images([grey16])[0]
    assert out.shape == (18, 14) and out.dtype == np.uint16 and out.max() > 255
    rgb = np.zeros((5, 6, 3), np.uint8)
    assert up.upscale_images([rgb])[0].shape == (10, 12, 3)


def test_named_x2_model_defaults_to_outscale_2(tmp_path):
    up = Upsampler(UpscaleConfig(model="realesr-animevideov3-x2", weights_source="ncnn", cache_dir=str(tmp_path)))
    assert (up.net_scale, up.outscale) == (4, 2.0)
    assert up.upscale_images([np.full((8, 8, 4), 200, np.uint8)])[0].shape == (16, 16, 4)


def test_bad_inputs_name_the_image(small_srvgg_file):
    up = _upsampler(small_srvgg_file)
    with pytest.raises(ValueError, match="image 1: expected a uint8/uint16 numpy array, got float32"):
        up.upscale_images([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match=r"image 0: expected HxW, HxWx1, HxWx3 or HxWx4, got shape \(4, 4, 2\)"):
        up.upscale_images([np.zeros((4, 4, 2), np.uint8)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(small_srvgg_file):
    with pytest.raises(ValueError, match="upscale.device='cuda' but no CUDA device is visible"):
        Upsampler(UpscaleConfig(model=str(small_srvgg_file), device="cuda"))
