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
from triton.tools.tensor_descriptor import TensorDescriptor
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
    x_desc, wa_desc, wb_desc, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr, res_stride,
    res2_ptr, res2_stride, scale, H, W,
    CIN: tl.constexpr, NA: tl.constexpr, NB: tl.constexpr, HAS_BIAS: tl.constexpr, ADD_PART: tl.constexpr,
    LRELU_COLS: tl.constexpr, MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # One program: BLOCK_M output pixels of one image row. Rows of the padded buffer are (W + 2) pixels, so
    # tap (ky, kx) of the tile is one contiguous (BLOCK_M, BLOCK_K) TMA block; no masks in the main loop.
    pid = tl.program_id(0)
    tiles_w = tl.cdiv(W, BLOCK_M)
    row = pid // tiles_w  # image * H + y
    x0 = (pid % tiles_w) * BLOCK_M
    wp = W + 2
    base = ((row // H) * (H + 2) + row % H) * wp + x0  # padded index of the tile's tap (0, 0)
    acc_a = tl.zeros((BLOCK_M, NA), dtype=tl.float32)
    if NB > 0:
        acc_b = tl.zeros((BLOCK_M, NB), dtype=tl.float32)
    k_steps: tl.constexpr = CIN // BLOCK_K
    for step in range(0, 9 * k_steps):  # one flat loop over (tap, channel chunk), so loads pipeline across taps
        tap = step // k_steps
        k = tap * CIN + (step % k_steps) * BLOCK_K
        a = x_desc.load([base + (tap // 3) * wp + tap % 3, (step % k_steps) * BLOCK_K])
        acc_a = tl.dot(a, wa_desc.load([k, 0]), acc_a)
        if NB > 0:
            acc_b = tl.dot(a, wb_desc.load([k, NA]), acc_b)
    offs_m = base + wp + 1 + tl.arange(0, BLOCK_M)
    in_range = x0 + tl.arange(0, BLOCK_M) < W
    cols_a = tl.arange(0, NA)
    _epilogue(acc_a, offs_m, in_range, cols_a, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
              res_stride, res2_ptr, res2_stride, scale, HAS_BIAS, ADD_PART, LRELU_COLS, MODE)
    if NB > 0:
        cols_b = NA + tl.arange(0, NB)
        _epilogue(acc_b, offs_m, in_range, cols_b, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
                  res_stride, res2_ptr, res2_stride, scale, HAS_BIAS, ADD_PART, LRELU_COLS, MODE)


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Keep the tile shapes whose channel chunk divides the segment's input channels."""
    cin = kwargs.get("CIN", named_args.get("CIN"))
    return [c for c in configs if cin % c.kwargs["BLOCK_K"] == 0] or configs[:1]


def _set_blocks(nargs: dict) -> None:
    """Give the TMA descriptors the block shapes of the config being launched."""
    bm, bk, na, nb = nargs["BLOCK_M"], nargs["BLOCK_K"], nargs["NA"], nargs["NB"]
    nargs["x_desc"].block_shape = [bm, bk]
    nargs["wa_desc"].block_shape = [bk, na]
    nargs["wb_desc"].block_shape = [bk, nb or na]


# Tuned per shape on the GPU (each trial restores the partial sums it adds to in place); the Triton
# interpreter (CPU tests) runs the plain kernel.
_conv3x3_tuned = triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": bm, "BLOCK_K": bk}, num_warps=nw, num_stages=ns, pre_hook=_set_blocks)
        for bm, bk, nw, ns in [
            (64, 32, 4, 3), (64, 32, 4, 4), (64, 64, 4, 3), (128, 32, 4, 3), (128, 32, 4, 4), (128, 32, 8, 3),
            (128, 32, 8, 4), (128, 32, 8, 5), (128, 64, 8, 3), (128, 64, 8, 4), (128, 64, 4, 3),
        ]
    ],
    key=["CIN", "NA", "NB", "H", "W", "MODE"],
    restore_value=["part_ptr"],
    prune_configs_by={"early_config_prune": _prune},
)(_conv3x3_jit)


def _split(n: int) -> tuple[int, int]:
    """``n`` output channels as NA + NB, NA the largest power of two <= n, NB a power of two or 0."""
    na = 1 << (n.bit_length() - 1)
    return na, n - na


def _check_tileable(weight: torch.Tensor) -> None:
    """Refuse, naming the shape, a packed conv the kernel cannot tile (every released model can be)."""
    cin, n = weight.shape[0] // 9, weight.shape[1]
    na, nb = _split(n)
    if cin % 32 or na < 16 or na > 256 or (nb and (nb < 16 or nb & (nb - 1))):
        raise ValueError(f"upscale: rrdb_impl='triton' cannot tile a conv of {cin} -> {n} channels (needs input "
                         "channels in multiples of 32 and 16 * 2^i [+ 16 * 2^j] outputs: num_feat 64 and grow 32, "
                         "as in every released model, work)")


def conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor, hw: tuple[int, int],
    part: torch.Tensor | None = None, lrelu_cols: int = 0, mode: int = _NONE, res: torch.Tensor | None = None,
    res2: torch.Tensor | None = None, scale: float = 0.2,
) -> None:
    """3x3 conv of ``x`` into ``out``, fused with the epilogue; both are (padded pixels, channels) views.

    Pixels are laid out as (images, H + 2, W + 2) with a zero border (the conv's padding, never written).
    ``bias`` and ``part`` (partial sums, may alias ``out``) are added, the first ``lrelu_cols`` output
    columns go through LeakyReLU(0.2), then ``mode`` adds residuals (``res``, ``res2``).
    """
    (h, w), cin = hw, x.shape[1]
    rows = x.shape[0] // ((h + 2) * (w + 2)) * h
    na, nb = _split(weight.shape[1])
    # Block shapes are placeholders until the launched config sets them (``_set_blocks``).
    descs = [TensorDescriptor.from_tensor(t, [16, 16]) for t in (x, weight, weight)]
    # An absent operand passes ``out`` (``weight`` for the bias): never read, its flag or mode is off.
    part_t, res_t, res2_t = (t if t is not None else out for t in (part, res, res2))
    args = (*descs, bias if bias is not None else weight, part_t, part_t.stride(0), out, out.stride(0),
            res_t, res_t.stride(0), res2_t, res2_t.stride(0), scale, h, w)
    flags = dict(CIN=cin, NA=na, NB=nb, HAS_BIAS=bias is not None, ADD_PART=part is not None, LRELU_COLS=lrelu_cols,
                 MODE=mode)
    if x.is_cuda:
        grid = lambda meta: (rows * triton.cdiv(w, meta["BLOCK_M"]),)  # noqa: E731
        _conv3x3_tuned[grid](*args, **flags)
    else:
        block = dict(BLOCK_M=16, BLOCK_K=16)
        _set_blocks(dict(zip(("x_desc", "wa_desc", "wb_desc"), descs), **flags, **block))
        _conv3x3_jit[(rows * triton.cdiv(w, 16),)](*args, **flags, **block)


def _pack(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (9 * Cin, Cout): tap-major, then input channel."""
    return weight.detach().permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).to(dtype).contiguous()


class _SegmentRDB:
    """One dense block as five GEMMs: four segment convs (conv1..conv4 regrouped) and conv5; packed weights."""

    def __init__(self, rdb: nn.Module, dtype: torch.dtype) -> None:
        convs = [rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4]
        self.num_feat, self.grow = f, g = rdb.conv1.in_channels, rdb.conv1.out_channels
        bounds = [0] + [f + s * g for s in range(4)]  # input channels of segment s: bounds[s]..bounds[s + 1]
        self.weights = [
            _pack(torch.cat([c.weight[:, bounds[s] : bounds[s + 1]] for c in convs[s:]], 0), dtype) for s in range(4)
        ]
        self.weights.append(_pack(rdb.conv5.weight, dtype))
        self.bias = torch.cat([c.bias.detach() for c in convs]).float().contiguous()
        self.bias5 = rdb.conv5.bias.detach().float().contiguous()
        for w in self.weights:
            _check_tileable(w)  # fail at build time, not in the first forward

    def convs(self, buf: torch.Tensor, out: torch.Tensor, hw: tuple[int, int], mode: int,
              res2: torch.Tensor | None = None) -> list[Callable[[], None]]:
        """The block's five convs, in order, over ``buf`` ([x | x1 | x2..x4 partials]); conv5 reads
        ``[x | x1..x4]``, adds the residual(s) (``mode``) and writes the block's output into ``out``."""
        f, g = self.num_feat, self.grow
        calls = [partial(conv3x3, buf[:, :f], self.weights[0], self.bias, buf[:, f:], hw, lrelu_cols=g)]
        for s in range(1, 4):
            cols = buf[:, f + s * g :]
            calls.append(partial(conv3x3, buf[:, f + (s - 1) * g : f + s * g], self.weights[s], None, cols, hw,
                                 part=cols, lrelu_cols=g))
        calls.append(partial(conv3x3, buf, self.weights[4], self.bias5, out, hw, mode=mode, res=buf[:, :f],
                             res2=res2))
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
        width = f + 4 * self.grow
        pixels = b * (h + 2) * (w + 2)  # zero-padded by one pixel on each side: the convs' padding
        if pixels * width >= 2**31:  # the kernel indexes with 32-bit offsets
            raise ValueError(f"upscale: {b} x {h} x {w} pixels per forward is too many; lower batch_size or tile")

        def padded(channels: int) -> torch.Tensor:
            return torch.zeros(pixels, channels, device=x.device, dtype=feat.dtype)

        def interior(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, h + 2, w + 2, t.shape[1])[:, 1:-1, 1:-1]

        feat_px = padded(f)
        interior(feat_px).copy_(feat.permute(0, 2, 3, 1))
        # bufs[0]: the RRDB input and rdb1's work; bufs[1], bufs[2]: rdb2, rdb3; bufs[3]: the RRDB output.
        bufs = [padded(width) for _ in range(4)]
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
        out = padded(f)
        conv3x3(bufs[0][:, :f], *self.body_conv, out, (h, w), mode=_RESIDUAL, res=feat_px, scale=1.0)
        return self.tail(interior(out).permute(0, 3, 1, 2))  # a channels_last NCHW view


def tritonize_rrdbnet(net: RRDBNet, dtype: torch.dtype = torch.float16) -> TritonRRDBNet:
    """The Triton form of ``net`` (already on a CUDA device, in ``dtype``); ``net``'s body is dropped."""
    return TritonRRDBNet(net, dtype).eval()
