"""Weights I/O: OpenLRM's key sets (small/base/large on the meta device), strict loads, round trips."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from lrm_dist.model.config import SIZES, LRMConfig, ModelConfig
from lrm_dist.model.lrm import LRM
from lrm_dist.model.pretrained import build_model, from_pretrained, load_into, save_pretrained
from tests.model.conftest import render_cameras, source_camera
from tests.model.openlrm_layout import expected_shapes

# The config.json files of the released OpenLRM v1.1 checkpoints (obj-small, mix-base, mix-large).
OPENLRM_CONFIGS = {
    "small": {"camera_embed_dim": 1024, "rendering_samples_per_ray": 96, "transformer_dim": 512,
              "transformer_layers": 12, "transformer_heads": 8, "triplane_low_res": 32, "triplane_high_res": 64,
              "triplane_dim": 32, "encoder_type": "dinov2", "encoder_model_name": "dinov2_vits14_reg",
              "encoder_feat_dim": 384, "encoder_freeze": False},
    "base": {"camera_embed_dim": 1024, "rendering_samples_per_ray": 96, "transformer_dim": 768,
             "transformer_layers": 12, "transformer_heads": 12, "triplane_low_res": 32, "triplane_high_res": 64,
             "triplane_dim": 48, "encoder_type": "dinov2", "encoder_model_name": "dinov2_vitb14_reg",
             "encoder_feat_dim": 768, "encoder_freeze": False},
    "large": {"camera_embed_dim": 1024, "rendering_samples_per_ray": 128, "transformer_dim": 1024,
              "transformer_layers": 16, "transformer_heads": 16, "triplane_low_res": 32, "triplane_high_res": 64,
              "triplane_dim": 80, "encoder_type": "dinov2", "encoder_model_name": "dinov2_vitb14_reg",
              "encoder_feat_dim": 768, "encoder_freeze": False},
}
PARAMS_M = {"small": 111.4, "base": 260.2, "large": 452.1}


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_openlrm_key_sets_and_shapes_match_on_meta(size: str):
    cfg = LRMConfig.model_validate(OPENLRM_CONFIGS[size])
    assert cfg == SIZES[size]
    with torch.device("meta"):
        model = LRM(cfg)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected_shapes(OPENLRM_CONFIGS[size])
    fused = "transformer.layers.0.cross_attn.in_proj_weight" in ours
    assert fused == (size == "base")
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(PARAMS_M[size], abs=0.1)
    # A checkpoint in OpenLRM's layout loads strictly (meta tensors: nothing is allocated).
    checkpoint = {k: torch.empty(s, device="meta") for k, s in expected_shapes(OPENLRM_CONFIGS[size]).items()}
    load_into(model, checkpoint)


def _write_openlrm_checkpoint(folder, cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    weights = {k: torch.randn(s, generator=gen) * 0.05 for k, s in expected_shapes(cfg).items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file(weights, str(folder / "model.safetensors"))
    return weights


@pytest.mark.parametrize("fused", [False, True])
def test_strict_load_of_a_checkpoint_written_in_openlrm_layout(tmp_path, fused: bool):
    cfg = SIZES["tiny"].hf_dict()
    if fused:  # encoder width == transformer width: cross-attention uses in_proj_weight, as in base
        cfg["transformer_dim"] = 32
    weights = _write_openlrm_checkpoint(tmp_path / "ckpt", cfg)
    model = from_pretrained(tmp_path / "ckpt")
    assert ("transformer.layers.0.cross_attn.in_proj_weight" in model.state_dict()) == fused
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    out = model.eval().forward_planes(torch.rand(1, 3, 56, 56), source_camera(1))
    assert torch.isfinite(out).all()


def test_checkpoint_with_a_wrong_key_set_is_refused(tmp_path):
    cfg = SIZES["tiny"].hf_dict()
    _write_openlrm_checkpoint(tmp_path / "ckpt", cfg)
    cfg["triplane_dim"] = 16
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="wrong shape.*upsampler"):
        from_pretrained(tmp_path / "ckpt")


def test_save_load_round_trip(tmp_path, tiny: LRM):
    save_pretrained(tiny, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["source_size"] == 56
    loaded = build_model(ModelConfig(pretrained=str(tmp_path / "m"))).eval()
    assert loaded.config == tiny.config
    ref = tiny.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    image = torch.rand(1, 3, 56, 56)
    c2w, k = render_cameras(1, [30.0])
    a = tiny.render(tiny.forward_planes(image, source_camera(1)), c2w, k, 12, 12)
    b = loaded.render(loaded.forward_planes(image, source_camera(1)), c2w, k, 12, 12)
    for key in a:  # equal weights; memory alignment of loaded tensors may change the last float bit
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)
    assert all(p.requires_grad for p in loaded.parameters())


def test_missing_folder_and_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder and not a hub id"):
        from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        from_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(SIZES["tiny"].hf_dict()))
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        from_pretrained(tmp_path / "empty")
