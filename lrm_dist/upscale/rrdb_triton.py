"""RRDBNet's dense blocks as Triton convolutions over one NHWC buffer: no concatenation, no extra passes.

Each dense block works in a (pixels, 192) fp16 buffer: x in channels 0..63, and conv k reads the
channel prefix it needs and writes its 32 outputs (bias + LeakyReLU applied in the kernel) into the
next free channels, so ``torch.cat`` never runs. conv5 adds the 0.2-scaled residual (and for the
third block the RRDB's own residual) before storing straight into the next block's buffer. Head and
tail stay PyTorch. CUDA only (Triton); used by the engine when ``rrdb_impl='triton'``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from lrm_dist.upscale.rrdbnet import RRDBNet

# Epilogues: 0 LeakyReLU(0.2); 1 acc * scale + res; 2 (acc * 0.2 + res) * 0.2 + res2.
_LRELU, _RESIDUAL, _DOUBLE_RESIDUAL = 0, 1, 2


@triton.jit
def _conv3x3_jit(
    x_ptr, x_stride, w_ptr, b_ptr, out_ptr, out_stride, res_ptr, res_stride, res2_ptr, res2_stride,
    scale, P, H, W,
    CIN: tl.constexpr, N: tl.constexpr, MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, N)
    in_range = offs_m < P
    rem = offs_m % (H * W)
    yy = rem // W
    xx = rem % W
    acc = tl.zeros((BLOCK_M, N), dtype=tl.float32)
    k_steps: tl.constexpr = (CIN + BLOCK_K - 1) // BLOCK_K
    for step in range(0, 9 * k_steps):  # one flat loop over (tap, channel chunk), so loads pipeline across taps
        tap = step // k_steps
        dy = tap // 3 - 1
        dx = tap % 3 - 1
        valid = in_range & (yy + dy >= 0) & (yy + dy < H) & (xx + dx >= 0) & (xx + dx < W)
        src = offs_m + dy * W + dx
        offs_k = (step % k_steps) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_ok = offs_k < CIN
        a = tl.load(x_ptr + src[:, None] * x_stride + offs_k[None, :], mask=valid[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + (tap * CIN + offs_k)[:, None] * N + offs_n[None, :], mask=k_ok[:, None], other=0.0)
        acc = tl.dot(a, w, acc)
    acc += tl.load(b_ptr + offs_n)[None, :]
    if MODE == 0:
        acc = tl.where(acc >= 0, acc, acc * 0.2)
    else:
        res = tl.load(res_ptr + offs_m[:, None] * res_stride + offs_n[None, :], mask=in_range[:, None], other=0.0)
        if MODE == 1:
            acc = acc * scale + res.to(tl.float32)
        else:
            res2 = tl.load(res2_ptr + offs_m[:, None] * res2_stride + offs_n[None, :], mask=in_range[:, None],
                           other=0.0)
            acc = (acc * 0.2 + res.to(tl.float32)) * 0.2 + res2.to(tl.float32)
    tl.store(out_ptr + offs_m[:, None] * out_stride + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=in_range[:, None])


# Tuned per (Cin, Cout, pixels) on the GPU; the Triton interpreter (CPU tests) runs the plain kernel.
_conv3x3_tuned = triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 256, "BLOCK_K": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=4, num_stages=5),
        triton.Config({"BLOCK_M": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    ],
    key=["CIN", "N", "P"],
)(_conv3x3_jit)


def _pack(conv: nn.Conv2d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(9 * Cin, Cout) weights, tap-major then input channel; fp32 bias."""
    w = conv.weight.detach().permute(2, 3, 1, 0).reshape(-1, conv.out_channels)
    return w.to(dtype).contiguous(), conv.bias.detach().float().contiguous()


def conv3x3(
    x: torch.Tensor, cin: int, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor, hw: tuple[int, int],
    mode: int = _LRELU, res: torch.Tensor | None = None, res2: torch.Tensor | None = None, scale: float = 0.2,
) -> None:
    """3x3 conv of the first ``cin`` channels of pixel-major ``x`` (P, C) into ``out`` (P, Cout view)."""
    p = x.shape[0]
    res = out if res is None else res
    res2 = out if res2 is None else res2
    args = (x, x.stride(0), weight, bias, out, out.stride(0), res, res.stride(0), res2, res2.stride(0),
            scale, p, hw[0], hw[1])
    if x.is_cuda:
        grid = lambda meta: (triton.cdiv(p, meta["BLOCK_M"]),)  # noqa: E731
        _conv3x3_tuned[grid](*args, CIN=cin, N=weight.shape[1], MODE=mode)
    else:
        _conv3x3_jit[(triton.cdiv(p, 64),)](*args, CIN=cin, N=weight.shape[1], MODE=mode, BLOCK_M=64, BLOCK_K=64)


class TritonRRDBNet(nn.Module):
    """Inference-only RRDBNet whose 23 x 3 dense blocks run as in-buffer Triton convs."""

    def __init__(self, net: RRDBNet, dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        self.net = net
        self.scale = net.scale
        self.num_feat = net.conv_first.out_channels
        self.grow = net.body[0].rdb1.conv1.out_channels
        packed = []
        for block in net.body:
            for rdb in (block.rdb1, block.rdb2, block.rdb3):
                packed.append([_pack(c, dtype) for c in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5)])
        self.packed = packed
        self.body_conv = _pack(net.conv_body, dtype)
        net.body = nn.Sequential()  # the packed copies replace it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.net.head(x)  # (B, F, H, W), channels_last on GPU
        b, f, h, w = feat.shape
        g, width = self.grow, self.num_feat + 4 * self.grow
        feat_px = feat.permute(0, 2, 3, 1).reshape(-1, f)  # a view when channels_last
        if feat_px.shape[0] * width >= 2**31:  # the kernel indexes with 32-bit offsets
            raise ValueError(f"upscale: {b} x {h} x {w} pixels per forward is too many; lower batch_size or tile")
        # bufs[0]: the RRDB input and rdb1's work; bufs[1], bufs[2]: rdb2, rdb3; bufs[3]: the RRDB output.
        bufs = [torch.empty(feat_px.shape[0], width, device=x.device, dtype=feat.dtype) for _ in range(4)]
        bufs[0][:, :f] = feat_px
        for i, rdb in enumerate(self.packed):
            j = i % 3
            buf = bufs[j]
            for k in range(4):
                cin = f + k * g
                conv3x3(buf, cin, *rdb[k], buf[:, cin : cin + g], (h, w))
            if j < 2:
                conv3x3(buf, width, *rdb[4], bufs[j + 1][:, :f], (h, w), _RESIDUAL, res=buf[:, :f])
            else:
                conv3x3(buf, width, *rdb[4], bufs[3][:, :f], (h, w), _DOUBLE_RESIDUAL, res=buf[:, :f],
                        res2=bufs[0][:, :f])
                bufs[0], bufs[3] = bufs[3], bufs[0]
        out = torch.empty_like(feat_px)
        conv3x3(bufs[0], f, *self.body_conv, out, (h, w), _RESIDUAL, res=feat_px, scale=1.0)
        feat = out.view(b, h, w, f).permute(0, 3, 1, 2)  # channels_last NCHW view
        return self.net.tail(feat)


def tritonize_rrdbnet(net: RRDBNet, dtype: torch.dtype = torch.float16) -> TritonRRDBNet:
    """The Triton form of ``net`` (already on a CUDA device, in ``dtype``); ``net``'s body is dropped."""
    return TritonRRDBNet(net, dtype).eval()

