"""Render -> upscale actor -> shard writer on the test cluster, with a tiny random Real-ESRGAN (SRVGG x4)."""

import numpy as np
import pytest
from tests.render.conftest import render_actor_args

from lrm_dist.assets import build_assets
from lrm_dist.config import PipelineConfig
from lrm_dist.render import render_assets
from lrm_dist.shards import iter_render_samples
from lrm_dist.shards.verify import verify_render_dir

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest.importorskip("bpy")


def _small_srvgg(path, num_conv=2, feat=8, scale=4):
    """Random weights with SRVGGNetCompact's key names (body.{2i} convs, body.{2i+1} PReLU, last conv)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    state, cin = {}, 3
    for i in range(num_conv + 1):
        state[f"body.{2 * i}.weight"] = torch.randn(feat, cin, 3, 3, generator=gen) * 0.05
        state[f"body.{2 * i}.bias"] = torch.zeros(feat)
        state[f"body.{2 * i + 1}.weight"] = torch.full((feat,), 0.25)
        cin = feat
    last = 2 * (num_conv + 1)
    state[f"body.{last}.weight"] = torch.randn(3 * scale**2, feat, 3, 3, generator=gen) * 0.05
    state[f"body.{last}.bias"] = torch.zeros(3 * scale**2)
    save_file(state, str(path))
    return path


def test_upscaled_rgba_with_scaled_intrinsics(cluster, tmp_path):
    weights = _small_srvgg(tmp_path / "srvgg.safetensors")
    cfg = PipelineConfig.model_validate({
        "workdir": str(tmp_path / "w"),
        "assets": {"sources": [{"kind": "procedural", "per_category": 1, "categories": ["chair", "table"]}]},
        "render": {"views": 2, "resolution": 32, "samples": 2, "actors": render_actor_args()},
        "upscale": {"enabled": True, "model": str(weights), "device": "cpu", "batch_size": 2,
                    "actors": {"count": 1, "num_gpus": 0, "num_cpus": 1}},
    })
    build_assets(cfg)
    summary = render_assets(cfg)
    assert summary.done == 2 and summary.failed == 0, str(summary)
    assert len(verify_render_dir(cfg.stage_dir("render"))) == 2
    for s in iter_render_samples(cfg.stage_dir("render")):
        assert s["rgba"].shape == (2, 128, 128, 4) and s["depth"].shape == (2, 32, 32)
        assert s["meta"]["upscaled"] is True and s["meta"]["render_resolution"] == 32 and s["meta"]["resolution"] == 128
        fx = 0.5 * 32 / np.tan(np.radians(47.5) / 2)  # view 0 takes the middle of the default fov range
        np.testing.assert_allclose(s["intrinsics"][0], [4 * fx, 4 * fx, 64, 64, 128, 128], rtol=1e-5)
