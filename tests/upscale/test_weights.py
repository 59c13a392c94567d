"""Weights: official key layouts load into the right architecture; wrappers, formats and errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from lrm_dist.upscale.rrdbnet import RRDBNet
from lrm_dist.upscale.srvgg import SRVGGNetCompact
from lrm_dist.upscale.weights import WeightsError, build_model, detect_architecture, load_model, read_state_dict

from upscale_statedicts import rrdb_state, srvgg_state

# name: (state dict builder, arch, scale, expected constructor kwargs subset)
OFFICIAL = {
    "RealESRGAN_x4plus": (lambda: rrdb_state(23), "rrdbnet", 4, {"num_block": 23, "num_feat": 64, "num_grow_ch": 32}),
    "RealESRGAN_x2plus": (lambda: rrdb_state(23, scale=2), "rrdbnet", 2, {"num_block": 23}),
    "RealESRGAN_x4plus_anime_6B": (lambda: rrdb_state(6), "rrdbnet", 4, {"num_block": 6}),
    "realesr-general-x4v3": (lambda: srvgg_state(32), "srvgg", 4, {"num_conv": 32, "act_type": "prelu"}),
    "realesr-animevideov3": (lambda: srvgg_state(16), "srvgg", 4, {"num_conv": 16, "act_type": "prelu"}),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_layout_loads_by_key_names(tmp_path, name):
    build, arch, scale, expected = OFFICIAL[name]
    state = build()
    # RRDB releases wrap in params_ema, the v3 compact ones in params.
    wrapper = "params_ema" if arch == "rrdbnet" else "params"
    path = tmp_path / f"{name}.pth"
    torch.save({wrapper: state}, path)
    net, spec, outscale = load_model(str(path))
    assert (spec.arch, spec.scale, outscale) == (arch, scale, None)
    assert {k: spec.kwargs[k] for k in expected} == expected
    assert isinstance(net, RRDBNet if arch == "rrdbnet" else SRVGGNetCompact)
    loaded = net.state_dict()
    assert set(loaded) == set(state)
    for key in state:
        assert torch.equal(loaded[key], state[key]), key


def test_x2plus_unshuffles_and_doubles():
    net, spec = build_model(rrdb_state(1, scale=2))
    with torch.no_grad():
        out = net(torch.rand(1, 3, 8, 6))
    assert spec.kwargs["scale"] == 2 and net.conv_first.in_channels == 12 and out.shape == (1, 3, 16, 12)


def test_safetensors_and_module_prefix(tmp_path):
    state = srvgg_state(2, num_feat=8)
    save_file({f"module.{k}": v for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    read = read_state_dict(tmp_path / "w.safetensors")
    assert set(read) == set(state)
    assert detect_architecture(read).kwargs["num_conv"] == 2


def test_srvgg_forward_matches_manual_graph():
    state = srvgg_state(2, num_feat=8, upscale=2)
    net, spec = build_model(state)
    x = torch.rand(1, 3, 5, 7)
    h = x
    for i in range(3):
        h = torch.nn.functional.conv2d(h, state[f"body.{2 * i}.weight"], state[f"body.{2 * i}.bias"], padding=1)
        slope = state[f"body.{2 * i + 1}.weight"].view(1, -1, 1, 1)
        h = torch.where(h >= 0, h, h * slope)
    h = torch.nn.functional.conv2d(h, state["body.6.weight"], state["body.6.bias"], padding=1)
    # pixel shuffle by hand: channel c*4 + i*2 + j goes to (2y+i, 2x+j)
    ref = h.view(1, 3, 2, 2, 5, 7).permute(0, 1, 4, 2, 5, 3).reshape(1, 3, 10, 14)
    ref = ref + x.repeat_interleave(2, -2).repeat_interleave(2, -1)
    with torch.no_grad():
        assert torch.allclose(net(x), ref, atol=1e-5)


def test_fused_rrdb_equals_plain():
    from lrm_dist.upscale.rrdb_fused import fuse_rrdbnet

    net, _ = build_model(rrdb_state(2, num_feat=16, grow=8))
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        plain = net(x)
        fused = fuse_rrdbnet(net)(x)
    assert torch.allclose(plain, fused, atol=1e-5)


def test_garbage_file_gives_clear_error(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="broken.pth.*unreadable"):
        load_model(str(bad))
    bad_st = tmp_path / "broken.safetensors"
    bad_st.write_bytes(b"\x00" * 3)
    with pytest.raises(WeightsError, match="broken.safetensors"):
        load_model(str(bad_st))


def test_foreign_state_dict_gives_clear_error(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "layer1.0.conv1.weight": torch.zeros(4, 4, 3, 3)}, path)
    with pytest.raises(WeightsError, match="resnet.pth: not a Real-ESRGAN"):
        load_model(str(path))
    path2 = tmp_path / "list.pth"
    torch.save([1, 2, 3], path2)
    with pytest.raises(WeightsError, match="no tensor state dict"):
        load_model(str(path2))


def test_mismatched_shapes_give_clear_error(tmp_path):
    state = rrdb_state(1, num_feat=16, grow=8)
    state["body.0.rdb2.conv3.weight"] = torch.zeros(8, 5, 3, 3)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match="do not fit the detected rrdbnet"):
        load_model(str(tmp_path / "odd.pth"))


def test_missing_file_and_unknown_name():
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_model("/nonexistent/w.pth")
    with pytest.raises(ValueError, match="unknown upscale model 'esrgan-x9'"):
        load_model("esrgan-x9")
