"""Tiling: the grid covers each pixel once, and tiled output equals untiled output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from upscale_statedicts import rrdb_state, srvgg_state

from lrm_dist.upscale.config import UpscaleConfig
from lrm_dist.upscale.engine import Upsampler
from lrm_dist.upscale.tiling import apply_tiled, tile_grid
from lrm_dist.upscale.weights import build_model


def test_grid_covers_image_once():
    tiles = tile_grid(23, 17, 8, 3)
    cover = np.zeros((23, 17), int)
    for t in tiles:
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert 0 <= t.py0 <= t.y0 and t.y1 <= t.py1 <= 23 and 0 <= t.px0 <= t.x0 and t.x1 <= t.px1 <= 17
        assert t.y0 - t.py0 == min(3, t.y0) and t.py1 - t.y1 == min(3, 23 - t.y1)
    assert (cover == 1).all() and len(tiles) == 3 * 3


@pytest.mark.parametrize(("tile", "batch", "blend", "pad"), [(8, 1, "crop", 5), (11, 3, "crop", 5),
                                                           (7, 16, "crop", 6), (12, 4, "linear", 10)])
def test_tiled_equals_untiled_when_pad_covers_receptive_field(tile, batch, blend, pad):
    """Crop needs tile_pad >= the receptive radius; linear blending uses outputs >= tile_pad/2 from the edge."""
    net, _ = build_model(srvgg_state(num_conv=3, num_feat=16))  # 5 convs: receptive radius 5
    x = torch.rand(2, 3, 21, 26, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = apply_tiled(net, x, 4)
        tiled = apply_tiled(net, x, 4, tile=tile, tile_pad=pad, batch_size=batch, blend=blend)
    assert tiled.shape == whole.shape == (2, 3, 84, 104)
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_x2_rrdb_tiles_with_mod_and_pre_padding():
    net, _ = build_model(rrdb_state(1, scale=2, num_feat=8, grow=4))
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = apply_tiled(net, x, 2, pre_pad=2)
        tiled = apply_tiled(net, x, 2, tile=6, tile_pad=30, pre_pad=2, blend="crop")
    assert whole.shape == (1, 3, 26, 22)
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_real_model_linear_blend_hides_seams(tmp_path):
    """animevideov3 sees 18 px around a pixel, more than tile_pad=10: cropping leaves visible seams,
    the linear cross-fade keeps every pixel within a few grey levels of the untiled result."""
    cfg = UpscaleConfig(model="realesr-animevideov3-x4", weights_source="ncnn", cache_dir=str(tmp_path))
    yy, xx = np.mgrid[0:40, 0:40]
    image = np.stack([128 + 100 * np.sin(xx / 5), 128 + 100 * np.cos(yy / 7), (xx + yy) * 3], -1).astype(np.uint8)
    up = Upsampler(cfg)
    whole = up.upscale_images([image])[0].astype(int)
    errors, jumps = {}, {}
    for blend in ("crop", "linear"):
        up.cfg = cfg.model_copy(update={"tile": 16, "tile_pad": 10, "tile_blend": blend})
        out = up.upscale_images([image])[0].astype(int)
        errors[blend] = np.abs(out - whole)
        # the step across the tile boundary (output rows 63|64), beyond the untiled image's own step
        jumps[blend] = np.abs((out[64] - out[63]) - (whole[64] - whole[63])).max()
    assert whole.shape == (160, 160, 3)
    assert errors["linear"].max() < errors["crop"].max() and jumps["linear"] < jumps["crop"]
    assert errors["linear"].mean() < 0.6


def test_pre_pad_larger_than_image_is_a_clear_error():
    net, _ = build_model(srvgg_state(num_conv=1, num_feat=4))
    with pytest.raises(ValueError, match="pre_pad .* must be smaller than the image"):
        apply_tiled(net, torch.rand(1, 3, 4, 4), 4, pre_pad=10)
