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
from lrm_dist.upscale import rrdb_triton
from lrm_dist.upscale.rrdb_triton import tritonize_rrdbnet
rrdb_triton.INTERPRETER_ROWS = {rows}  # CPU only; on the GPU the autotuner picks
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

# One conv at a time, against PyTorch, with bias and LeakyReLU: nearest x2 + conv (the tail's phase convs), 96
# outputs (two dots, 64 + 32; on the GPU the autotuner may take one padded dot) and 3 outputs (one
# padded dot of 16 columns, the rest masked). Five rows: with two rows per program the last program has one.
CONVS = """
import torch
import torch.nn.functional as F
from lrm_dist.upscale import rrdb_triton as rt
rt.INTERPRETER_ROWS = {rows}  # CPU only; on the GPU the autotuner picks
device, dtype, tol = ("cuda", torch.float16, 2e-3) if torch.cuda.is_available() else ("cpu", torch.float32, 1e-5)
torch.manual_seed(0)
b, h, w = 2, 5, 7
for cin, cout, upsample in ((64, 64, True), (32, 96, False), (64, 3, False)):
    x = torch.randn(b, cin, h, w, device=device, dtype=dtype)
    weight = torch.randn(cout, cin, 3, 3, device=device) * 0.05
    bias = torch.randn(cout, device=device) * 0.1
    ref = F.leaky_relu(F.conv2d(F.interpolate(x.float(), scale_factor=2) if upsample else x.float(), weight, bias,
                                padding=1), 0.2)
    xp = rt._to_padded(x)
    oh, ow = (2 * h, 2 * w) if upsample else (h, w)
    out = torch.zeros(b * (oh + 2) * (ow + 2), cout, device=device, dtype=dtype)
    pack = rt._pack_upsample if upsample else rt._pack
    rt.conv3x3(xp, pack(weight, dtype), bias.float(), out, (h, w), lrelu_cols=cout, upsample=upsample)
    got = rt._interior(out, b, oh, ow).permute(0, 3, 1, 2).float()
    err = ((got - ref).norm() / ref.norm()).item()
    print(cin, cout, upsample, "relative error", err)
    assert err < tol, (cin, cout, upsample, err)
    view = out.view(b, oh + 2, ow + 2, cout)
    assert view[:, 0].abs().sum() == 0 and view[:, :, -1].abs().sum() == 0, "the border was written"
# conv_hr + conv_last as the net runs them: conv_hr's epilogue stores conv_last's per-tap products, tap_sum adds them
x = torch.randn(b, 64, h, w, device=device, dtype=dtype)
w_hr, w_last = torch.randn(64, 64, 3, 3, device=device) * 0.05, torch.randn(3, 64, 3, 3, device=device) * 0.05
b_hr, b_last = torch.randn(64, device=device) * 0.1, torch.randn(3, device=device) * 0.1
ref = F.conv2d(F.leaky_relu(F.conv2d(x.float(), w_hr, b_hr, padding=1), 0.2), w_last, b_last, padding=1)
proj = rt._pack_projection(w_last, dtype)
products = rt._padded(b, h, w, proj.shape[1], x)
rt.conv3x3(rt._to_padded(x), rt._pack(w_hr, dtype), b_hr, products, (h, w), lrelu_cols=64, proj=proj)
rgb = torch.empty(b, 3, h, w, device=device, dtype=dtype)
rt.tap_sum(products, b_last, rgb)
err = ((rgb.float() - ref).norm() / ref.norm()).item()
print("conv_hr + conv_last relative error", err)
assert err < tol, err
"""


def _run_checked(code: str) -> None:
    """Run ``code`` in a fresh interpreter: Triton's CPU interpreter must be chosen before triton is imported."""
    pytest.importorskip("triton")
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("rows", [1, 2])
def test_triton_form_matches_official_rrdbnet(rows):
    _run_checked(CHECK.format(tests=str(Path(__file__).parent), rows=rows))


@pytest.mark.parametrize("rows", [1, 2])
def test_triton_convs_match_pytorch(rows):
    _run_checked(CONVS.replace("{rows}", str(rows)))


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
    # num_feat 96 tiles, but conv_last is folded into conv_hr's epilogue as one power-of-two-wide dot
    net = RRDBNet(num_feat=96, num_block=1, num_grow_ch=32)
    with pytest.raises(ValueError, match="needs a power-of-two num_feat .*got 96"):
        TritonRRDBNet(net, torch.float32)
    assert len(net.body) == 1  # a refused net keeps its body (the engine falls back to 'fused' under auto)
    TritonRRDBNet(RRDBNet(num_feat=32, num_block=1, num_grow_ch=32), torch.float32)  # conv5: 160 -> 32, fine
