"""RRDBNet's dense blocks as Triton convolutions regrouped by input segment, in one NHWC buffer per block.

A dense block's conv k reads ``cat(x, x1, .., x_{k-1})``. As in ``rrdb_fused``, the block is regrouped by
*input segment*: when x_s appears, one conv computes its contribution to every later conv (64 -> 192,
then 32 -> 160 / 128 / 96 / 64 output channels: wide GEMMs). Here each segment conv is one Triton kernel
working in a (pixels, 256) fp16 buffer laid out as ``[x | x1 | x2 | x3 | x4 | conv5]``: it reads its
segment's channels (3x3 taps), adds the partial sums already stored in its output columns (at its own
pixels, so in the epilogue), applies the LeakyReLU to the 32 columns that are now complete (the next
segment) and stores the rest back as partial sums. The last segment adds the 0.2-scaled residual (and,
for an RRDB's third block, the RRDB's own) and writes the next block's input. No concatenation, no
separate pointwise pass. Head and tail stay PyTorch; ``compile_edges`` compiles just them, because
compiling the whole forward crashed (an illegal memory access while inductor tuned these kernels; torch
2.11, H200). CUDA only (Triton); used by the engine when ``rrdb_impl='triton'``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import triton
import triton.language as tl
from torch import nn

from lrm_dist.upscale.rrdbnet import RRDBNet

# Residual modes of the epilogue: 0 none; 1 acc * scale + res; 2 (acc * 0.2 + res) * 0.2 + res2.
_NONE, _RESIDUAL, _DOUBLE_RESIDUAL = 0, 1, 2


@triton.jit
def _epilogue(
    acc, offs_m, in_range, cols, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr, res_stride,
    res2_ptr, res2_stride, scale,
    HAS_BIAS: tl.constexpr, ADD_PART: tl.constexpr, LRELU_COLS: tl.constexpr, MODE: tl.constexpr,
):
    mask = in_range[:, None]
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols)[None, :]
    if ADD_PART:
        acc += tl.load(part_ptr + offs_m[:, None] * part_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if LRELU_COLS > 0:
        acc = tl.where((cols[None, :] < LRELU_COLS) & (acc < 0), acc * 0.2, acc)
    if MODE == 1:
        res = tl.load(res_ptr + offs_m[:, None] * res_stride + cols[None, :], mask=mask, other=0.0)
        acc = acc * scale + res.to(tl.float32)
    elif MODE == 2:
        res = tl.load(res_ptr + offs_m[:, None] * res_stride + cols[None, :], mask=mask, other=0.0)
        res2 = tl.load(res2_ptr + offs_m[:, None] * res2_stride + cols[None, :], mask=mask, other=0.0)
        acc = (acc * 0.2 + res.to(tl.float32)) * 0.2 + res2.to(tl.float32)
    tl.store(out_ptr + offs_m[:, None] * out_stride + cols[None, :], acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _conv3x3_jit(
    x_ptr, x_stride, w_ptr, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr, res_stride,
    res2_ptr, res2_stride, scale, P, H, W,
    CIN: tl.constexpr, NA: tl.constexpr, NB: tl.constexpr, HAS_BIAS: tl.constexpr, ADD_PART: tl.constexpr,
    LRELU_COLS: tl.constexpr, MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Output columns 0..NA-1 and NA..NA+NB-1 (NB may be 0): two power-of-two dots sharing each input tile.
    N: tl.constexpr = NA + NB
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    in_range = offs_m < P
    rem = offs_m % (H * W)
    yy = rem // W
    xx = rem % W
    cols_a = tl.arange(0, NA)
    acc_a = tl.zeros((BLOCK_M, NA), dtype=tl.float32)
    if NB > 0:
        cols_b = NA + tl.arange(0, NB)
        acc_b = tl.zeros((BLOCK_M, NB), dtype=tl.float32)
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
        rows = (tap * CIN + offs_k)[:, None] * N
        acc_a = tl.dot(a, tl.load(w_ptr + rows + cols_a[None, :], mask=k_ok[:, None], other=0.0), acc_a)
        if NB > 0:
            acc_b = tl.dot(a, tl.load(w_ptr + rows + cols_b[None, :], mask=k_ok[:, None], other=0.0), acc_b)
    _epilogue(acc_a, offs_m, in_range, cols_a, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
              res_stride, res2_ptr, res2_stride, scale, HAS_BIAS, ADD_PART, LRELU_COLS, MODE)
    if NB > 0:
        _epilogue(acc_b, offs_m, in_range, cols_b, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
                  res_stride, res2_ptr, res2_stride, scale, HAS_BIAS, ADD_PART, LRELU_COLS, MODE)


# Tuned per shape on the GPU (each trial restores the partial sums it adds to in place); the Triton
# interpreter (CPU tests) runs the plain kernel.
_conv3x3_tuned = triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_K": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=8, num_stages=4),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 256, "BLOCK_K": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=4, num_stages=2),
    ],
    key=["CIN", "NA", "NB", "P", "MODE"],
    restore_value=["part_ptr"],
)(_conv3x3_jit)


def _split(n: int) -> tuple[int, int]:
    """``n`` as NA + NB, NA the largest power of two <= n and NB a power of two or 0 (else ValueError)."""
    na = 1 << (n.bit_length() - 1)
    nb = n - na
    if na < 16 or (nb and (nb < 16 or nb & (nb - 1))):
        raise ValueError(f"upscale: rrdb_impl='triton' cannot tile a segment conv of {n} output channels "
                         "(needs 16 * 2^i [+ 16 * 2^j]: num_feat 64 and grow 32 as in every released model work)")
    return na, nb


def conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor, hw: tuple[int, int],
    part: torch.Tensor | None = None, lrelu_cols: int = 0, mode: int = _NONE, res: torch.Tensor | None = None,
    res2: torch.Tensor | None = None, scale: float = 0.2,
) -> None:
    """3x3 conv of pixel-major ``x`` (P, Cin view) into ``out`` (P, N view), fused with the epilogue.

    ``bias`` and ``part`` (partial sums, may alias ``out``) are added, the first ``lrelu_cols`` output
    columns go through LeakyReLU(0.2), then ``mode`` adds residuals (``res``, ``res2``).
    """
    p, cin = x.shape
    na, nb = _split(weight.shape[1])
    # An absent operand passes ``out`` (``weight`` for the bias): never read, its flag or mode is off.
    part_t, res_t, res2_t = (t if t is not None else out for t in (part, res, res2))
    args = (x, x.stride(0), weight, bias if bias is not None else weight, part_t, part_t.stride(0), out, out.stride(0),
            res_t, res_t.stride(0), res2_t, res2_t.stride(0), scale, p, hw[0], hw[1])
    flags = dict(CIN=cin, NA=na, NB=nb, HAS_BIAS=bias is not None, ADD_PART=part is not None, LRELU_COLS=lrelu_cols,
                 MODE=mode)
    if x.is_cuda:
        grid = lambda meta: (triton.cdiv(p, meta["BLOCK_M"]),)  # noqa: E731
        _conv3x3_tuned[grid](*args, **flags)
    else:
        _conv3x3_jit[(triton.cdiv(p, 64),)](*args, **flags, BLOCK_M=64, BLOCK_K=32)


def _pack(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (9 * Cin, Cout): tap-major, then input channel."""
    return weight.detach().permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).to(dtype).contiguous()


class _SegmentRDB:
    """One dense block's five segment convs: packed weights and the block's fp32 biases."""

    def __init__(self, rdb: nn.Module, dtype: torch.dtype) -> None:
        convs = [rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5]
        self.num_feat, self.grow = f, g = rdb.conv1.in_channels, rdb.conv1.out_channels
        bounds = [f + s * g for s in range(-1, 5)]
        bounds[0] = 0  # input channels of segment s: bounds[s]..bounds[s + 1]
        self.weights = [
            _pack(torch.cat([c.weight[:, bounds[s] : bounds[s + 1]] for c in convs[s:]], 0), dtype) for s in range(5)
        ]
        self.bias = torch.cat([c.bias.detach() for c in convs]).float().contiguous()
        for w in self.weights:
            _split(w.shape[1])  # fail at build time, not in the first forward

    def convs(self, buf: torch.Tensor, out: torch.Tensor, hw: tuple[int, int], mode: int,
              res2: torch.Tensor | None = None) -> list[Callable[[], None]]:
        """The block's five segment convs, in order, over ``buf`` ([x | x1..x4 | conv5 partial]); the last
        adds the residual(s) (``mode``) and writes the block's output into ``out``."""
        f, g = self.num_feat, self.grow
        calls = [partial(conv3x3, buf[:, :f], self.weights[0], self.bias, buf[:, f:], hw, lrelu_cols=g)]
        for s in range(1, 4):
            cols = buf[:, f + s * g :]
            calls.append(partial(conv3x3, buf[:, f + (s - 1) * g : f + s * g], self.weights[s], None, cols, hw,
                                 part=cols, lrelu_cols=g))
        calls.append(partial(conv3x3, buf[:, f + 3 * g : f + 4 * g], self.weights[4], None, out, hw,
                             part=buf[:, f + 4 * g :], mode=mode, res=buf[:, :f], res2=res2))
        return calls


class TritonRRDBNet(nn.Module):
    """Inference-only RRDBNet whose 23 x 3 dense blocks run as fused segment convs (Triton)."""

    def __init__(self, net: RRDBNet, dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        self.net = net
        self.scale = net.scale
        self.grow = net.body[0].rdb1.conv1.out_channels
        self.blocks = [_SegmentRDB(rdb, dtype) for block in net.body for rdb in (block.rdb1, block.rdb2, block.rdb3)]
        self.body_conv = (_pack(net.conv_body.weight, dtype), net.conv_body.bias.detach().float().contiguous())
        net.body = nn.Sequential()  # the packed copies replace it
        self.head, self.tail = net.head, net.tail

    def compile_edges(self, mode: str = "default") -> None:
        """torch.compile the PyTorch head and tail (the Triton body is already one kernel per segment)."""
        self.head = torch.compile(self.net.head, mode=mode, dynamic=False)
        self.tail = torch.compile(self.net.tail, mode=mode, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)  # (B, F, H, W), channels_last on GPU
        b, f, h, w = feat.shape
        width = 2 * f + 4 * self.grow
        feat_px = feat.permute(0, 2, 3, 1).reshape(-1, f)  # a view when channels_last
        if feat_px.shape[0] * width >= 2**31:  # the kernel indexes with 32-bit offsets
            raise ValueError(f"upscale: {b} x {h} x {w} pixels per forward is too many; lower batch_size or tile")
        # bufs[0]: the RRDB input and rdb1's work; bufs[1], bufs[2]: rdb2, rdb3; bufs[3]: the RRDB output.
        bufs = [torch.empty(feat_px.shape[0], width, device=x.device, dtype=feat.dtype) for _ in range(4)]
        bufs[0][:, :f] = feat_px
        for i, seg in enumerate(self.blocks):
            j = i % 3
            if j < 2:
                calls = seg.convs(bufs[j], bufs[j + 1][:, :f], (h, w), _RESIDUAL)
            else:
                calls = seg.convs(bufs[j], bufs[3][:, :f], (h, w), _DOUBLE_RESIDUAL, res2=bufs[0][:, :f])
            for call in calls:
                call()
            if j == 2:
                bufs[0], bufs[3] = bufs[3], bufs[0]
        out = torch.empty_like(feat_px)
        conv3x3(bufs[0][:, :f], *self.body_conv, out, (h, w), mode=_RESIDUAL, res=feat_px, scale=1.0)
        feat = out.view(b, h, w, f).permute(0, 3, 1, 2)  # channels_last NCHW view
        return self.tail(feat)


def tritonize_rrdbnet(net: RRDBNet, dtype: torch.dtype = torch.float16) -> TritonRRDBNet:
    """The Triton form of ``net`` (already on a CUDA device, in ``dtype``); ``net``'s body is dropped."""
    return TritonRRDBNet(net, dtype).eval()
