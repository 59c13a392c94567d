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


# fp8 (e4m3) dense blocks, against PyTorch convs of the same e4m3 values: one conv per epilogue form (segment 0:
# its finished 32 columns only as e4m3; a later segment adding partial sums; conv5: fp16 output plus its e4m3
# twin), then a whole dense block (``_SegmentRDB.convs``: which buffer columns each conv reads and writes).
# Triton's CPU interpreter rounds fp32 -> e4m3 its own way (a carry out of the mantissa reaches the exponent only
# when the exponent is even: 7.97 -> 4.0; below 2**-6 it does not round to nearest), so on CPU the reference
# rounds the same way; on the GPU it is torch's e4m3 (round to nearest even).
FP8 = """
import sys, torch
import torch.nn.functional as F
sys.path.insert(0, {tests!r})
from upscale_statedicts import rrdb_state
from lrm_dist.upscale import rrdb_triton as rt
from lrm_dist.upscale.weights import build_model
rt.INTERPRETER_ROWS = {rows}  # CPU only; on the GPU the autotuner picks
cuda = torch.cuda.is_available()
device, dtype, tol = ("cuda", torch.float16, 2e-2) if cuda else ("cpu", torch.float32, 1e-5)
e4m3 = torch.float8_e4m3fn

def q8(t):
    t = t.float().clamp(-448, 448)
    if cuda:
        return t.to(e4m3).float()
    bits = t.view(torch.int32)  # the interpreter's rounding
    m3 = ((bits >> 20) & 7) + ((bits >> 19) & 1)
    carried = (m3 == 8) & (((bits >> 23) & 1) == 0)
    kept = ((bits & ~0x7FFFFF) | ((m3 & 7) << 20)).view(torch.float32)
    return torch.where(t.abs() < 2**-6, t.to(e4m3).float(), torch.where(carried, 2 * kept, kept))

def dequantized(packed, scale, cin):
    return (packed.float() * scale[:, None]).reshape(-1, 3, 3, cin).permute(0, 3, 1, 2)

def rel(a, b):
    return ((a - b).norm() / b.norm()).item()

torch.manual_seed(0)
b, h, w = 2, 5, 7
px = b * (h + 2) * (w + 2)
for cin, cout, qcols, q_only, with_part in ((64, 128, 32, True, False), (32, 96, 32, True, True),
                                           (192, 64, 64, False, False)):
    x = torch.randn(b, cin, h, w, device=device)
    weight = torch.randn(cout, cin, 3, 3, device=device) * 0.05
    bias = torch.randn(cout, device=device) * 0.1
    part = torch.randn(b, cout, h, w, device=device).to(dtype) if with_part else None
    packed, scale = rt._pack_fp8(weight)
    assert packed.dtype == e4m3 and packed.shape == (cout, 9 * cin)
    x8 = q8(x).to(e4m3)
    ref = F.conv2d(x8.float(), dequantized(packed, scale, cin), bias, padding=1)
    if with_part:
        ref = ref + part.float()
    ref = F.leaky_relu(ref, 0.2)
    out = torch.zeros(px, cout, device=device, dtype=dtype)
    if with_part:
        rt._interior(out, b, h, w).copy_(part.permute(0, 2, 3, 1))
    q = torch.zeros(px, qcols, device=device, dtype=e4m3)
    rt.conv3x3(rt._to_padded(x8), packed, bias.float(), out, (h, w), part=out if with_part else None,
               lrelu_cols=cout, weight_scale=scale, q=q, q_only=q_only)
    got = rt._interior(out, b, h, w).permute(0, 3, 1, 2).float()
    got_q = rt._interior(q, b, h, w).permute(0, 3, 1, 2).float()
    first = qcols if q_only else 0
    err = rel(got[:, first:], ref[:, first:])
    ref_q = q8(ref[:, :qcols])
    exact = (got_q == ref_q)[ref_q.abs() >= 2**-6].float().mean().item()  # normal e4m3 values round alike
    print(cin, cout, "relative error", err, "e4m3 columns equal", exact)
    assert err < tol, (cin, cout, err)
    # Hopper's fp8 tensor cores accumulate with fewer bits than fp32: on the GPU some values round the other way
    assert (got_q - ref_q).abs().le(2**-7 + ref_q.abs() / 8).all() and exact > (0.95 if cuda else 0.99), exact
    if q_only:  # the finished columns went to q only
        assert torch.equal(got[:, :qcols], part.float()[:, :qcols] if with_part else torch.zeros_like(got[:, :qcols]))
    assert q.view(b, h + 2, w + 2, qcols)[:, 0].float().abs().sum() == 0, "the e4m3 twin's border was written"

# one dense block through _SegmentRDB.convs, against the official block with the same e4m3 inputs and weights
rdb = build_model(rrdb_state(1))[0].body[0].rdb1.to(device)
seg = rt._SegmentRDB(rdb, dtype, fp8=True)
f, g = 64, 32
bounds = [0, 64, 96, 128, 160]
weights = [torch.zeros_like(c.weight) for c in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4)]
for s in range(4):
    part = dequantized(seg.weights[s], seg.weight_scales[s], bounds[s + 1] - bounds[s])
    for k in range(s, 4):
        weights[k][:, bounds[s] : bounds[s + 1]] = part[(k - s) * g : (k - s + 1) * g]
weights.append(dequantized(seg.weights[4], seg.weight_scales[4], 192))
biases = [c.bias.float() for c in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5)]
x = torch.randn(b, f, h, w, device=device)
feats = [q8(x)]
for k in range(4):
    feats.append(q8(F.leaky_relu(F.conv2d(torch.cat(feats, 1), weights[k], biases[k], padding=1), 0.2)))
ref = F.conv2d(torch.cat(feats, 1), weights[4], biases[4], padding=1) * 0.2 + x
buf = rt._padded(b, h, w, 192, x.to(dtype))
buf[:, :f] = rt._to_padded(x.to(dtype))
q, q_out = (rt._padded(b, h, w, c, buf, e4m3) for c in (192, 64))
q[:, :f] = rt._to_padded(feats[0]).to(e4m3)
out = rt._padded(b, h, w, f, buf)
for call in seg.convs(buf, out, (h, w), rt._RESIDUAL, q=q, q_out=q_out):
    call()
got = rt._interior(out, b, h, w).permute(0, 3, 1, 2).float()
err = rel(got, ref)
print("dense block relative error", err, "(no e4m3: %.3g)" % rel(rdb.float()(x), ref))
assert err < (2e-2 if cuda else 1e-3), err
assert rel(rt._interior(q_out, b, h, w).permute(0, 3, 1, 2).float(), q8(got)) < (2e-2 if cuda else 1e-3)
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


@pytest.mark.parametrize("rows", [1, 2])
def test_fp8_convs_match_pytorch_on_the_same_e4m3_values(rows):
    _run_checked(FP8.format(tests=str(Path(__file__).parent), rows=rows))


def test_rrdb_impl_resolution():
    assert _rrdb_impl("auto", gpu=False) == "plain" and _rrdb_impl("auto", gpu=True) == "fused"
    assert _rrdb_impl("auto", gpu=True, hopper=True) == ("triton" if importlib.util.find_spec("triton") else "fused")
    assert _rrdb_impl("auto", gpu=False, hopper=True) == "plain"
    assert _rrdb_impl("fused", gpu=False) == "fused"
    with pytest.raises(ValueError, match="rrdb_impl='triton' needs a CUDA device"):
        _rrdb_impl("triton", gpu=False)
    assert UpscaleConfig().rrdb_impl == "auto" and UpscaleConfig().rrdb_fp8  # fp8 dense blocks under triton


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_triton_upsampler_with_compile_and_graphs_matches_plain():
    """The engine's Triton form with its defaults (compiled head and tail, CUDA graphs) computes the plain net."""
    state = rrdb_state(2)
    x = torch.rand(3, 3, 24, 40)
    outs = {}
    for impl, compiled in (("plain", False), ("triton", True)):
        cfg = UpscaleConfig(model="x", device="cuda", rrdb_impl=impl, compile=compiled, cuda_graphs=compiled,
                            rrdb_fp8=False)
        up = Upsampler(cfg, net=build_model(state)[0])
        outs[impl] = up.upscale_tensor(x.to(up.device)).float()
        outs[impl] = up.upscale_tensor(x.to(up.device)).float()  # the replayed graph
    err = ((outs["triton"] - outs["plain"]).norm() / outs["plain"].norm()).item()
    assert outs["triton"].shape == (3, 3, 96, 160) and err < 3e-3, err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp8_upsampler_stays_within_its_bound_of_fp32():
    """The GPU default (triton, fp8 dense blocks, compiled, graphs) stays near the fp32 plain net, and is fp8."""
    # body weights at a Kaiming-like scale (std 0.06, the file's 0.02 x 3), so the dense blocks carry the output
    state = {k: v * 3 if k.startswith("body.") and k.endswith("weight") else v for k, v in rrdb_state(2).items()}
    x = torch.rand(3, 3, 24, 40)
    cases = {"fp32": dict(rrdb_impl="plain", precision="fp32", compile=False, cuda_graphs=False),
             "fp16": dict(rrdb_fp8=False), "fp8": {}}
    outs = {}
    for name, kwargs in cases.items():
        up = Upsampler(UpscaleConfig(model="x", device="cuda", **kwargs), net=build_model(state)[0])
        assert up.rrdb_fp8 == (name == "fp8") and getattr(up.net, "fp8", False) == (name == "fp8")
        outs[name] = up.upscale_tensor(x.to(up.device)).float()
    ref = outs["fp32"]
    err = {name: ((outs[name] - ref).norm() / ref.norm()).item() for name in ("fp16", "fp8")}
    # measured on an H200 (2026-12-03): fp16 3.7e-4, fp8 2.1e-3 (relative L2 from fp32); the bound is about 3x that
    assert err["fp8"] < 6e-3 and err["fp8"] > 2 * err["fp16"], err


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
