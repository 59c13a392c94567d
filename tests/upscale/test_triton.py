"""The Triton RRDB form computes the official RRDBNet (runs where Triton is installed: GPU, or its CPU interpreter)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from upscale_statedicts import rrdb_state

from lrm_dist.upscale.config import UpscaleConfig
from lrm_dist.upscale.engine import Upsampler, _rrdb_impl
from lrm_dist.upscale.weights import build_model

CHECK = """
import sys, torch
sys.path.insert(0, {tests!r})
from upscale_statedicts import rrdb_state
from lrm_dist.upscale.weights import build_model
from lrm_dist.upscale.rrdb_triton import tritonize_rrdbnet
net, _ = build_model(rrdb_state(2))  # Cin 64..192: not all multiples of 64
device, dtype = ("cuda", torch.float16) if torch.cuda.is_available() else ("cpu", torch.float32)
net = net.to(device, dtype)
x = torch.rand(2, 3, 5, 7, device=device, dtype=dtype)
with torch.no_grad():
    ref = net(x).float()
    out = tritonize_rrdbnet(net, dtype)(x).float()
err = ((out - ref).norm() / ref.norm()).item()
print("relative error", err)
assert out.shape == (2, 3, 20, 28) and err < (2e-3 if device == "cuda" else 1e-6), err
"""


def test_triton_form_matches_official_rrdbnet():
    pytest.importorskip("triton")
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    code = CHECK.format(tests=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_rrdb_impl_resolution():
    assert _rrdb_impl("auto", gpu=False) == "plain" and _rrdb_impl("auto", gpu=True) == "fused"
    assert _rrdb_impl("auto", gpu=True, hopper=True) == ("triton" if importlib.util.find_spec("triton") else "fused")
    assert _rrdb_impl("auto", gpu=False, hopper=True) == "plain"
    assert _rrdb_impl("fused", gpu=False) == "fused"
    with pytest.raises(ValueError, match="rrdb_impl='triton' needs a CUDA device"):
        _rrdb_impl("triton", gpu=False)
    assert UpscaleConfig().rrdb_impl == "auto"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_triton_upsampler_with_compile_and_graphs_matches_plain():
    """The engine's Triton form with its defaults (compiled head and tail, CUDA graphs) computes the plain net."""
    state = rrdb_state(2)
    x = torch.rand(3, 3, 24, 40)
    outs = {}
    for impl, compiled in (("plain", False), ("triton", True)):
        cfg = UpscaleConfig(model="x", device="cuda", rrdb_impl=impl, compile=compiled, cuda_graphs=compiled)
        up = Upsampler(cfg, net=build_model(state)[0])
        outs[impl] = up.upscale_tensor(x.to(up.device)).float()
        outs[impl] = up.upscale_tensor(x.to(up.device)).float()  # the replayed graph
    err = ((outs["triton"] - outs["plain"]).norm() / outs["plain"].norm()).item()
    assert outs["triton"].shape == (3, 3, 96, 160) and err < 3e-3, err


def test_triton_form_refuses_untileable_widths_when_built():
    pytest.importorskip("triton")
    from lrm_dist.upscale.rrdb_triton import TritonRRDBNet
    from lrm_dist.upscale.rrdbnet import RRDBNet

    # num_feat 48: the first segment conv would read 48 channels a tap
    with pytest.raises(ValueError, match="cannot tile a conv of 48 -> 64 channels"):
        TritonRRDBNet(RRDBNet(num_feat=48, num_block=1, num_grow_ch=16), torch.float32)
    TritonRRDBNet(RRDBNet(num_feat=32, num_block=1, num_grow_ch=32), torch.float32)  # conv5: 160 -> 32, fine
