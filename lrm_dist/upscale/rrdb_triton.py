"""RRDBNet as fused Triton convolutions over zero-padded NHWC buffers: the dense blocks regrouped by segment.

A dense block's conv k reads ``cat(x, x1, .., x_{k-1})``. As in ``rrdb_fused``, conv1..conv4 are regrouped
by *input segment*: when x_s appears, one conv computes its contribution to every later one of them (64 ->
128, then 32 -> 96 / 64 / 32 output channels), in a (pixels, 192) fp16 buffer laid out as ``[x | x1 | x2 |
x3 | x4]``: each kernel adds the partial sums already stored in its output columns (at its own pixels, so
in the epilogue), applies the LeakyReLU to the 32 columns now complete and stores the rest back. conv5 then
reads all 192 channels in one long-K GEMM and adds the 0.2-scaled residual (and, for an RRDB's third block,
the RRDB's own), writing the next block's input: no concatenation, no pointwise pass, and conv5's output
never round-trips as partial sums. Buffers carry a one-pixel zero border (the convs' padding), so every tap
of a tile of image rows is a single TMA block; a tile of two rows loads each of its four input rows once.
The tail is the same kernel: each nearest x2 upsampling plus conv is four 2x2 convs of the low-resolution
input (one per output phase) writing interleaved pixels, and conv_hr's epilogue projects its activations onto
conv_last's 27 per-tap products, which ``tap_sum`` adds into the RGB output. Only the head (conv_first) stays
PyTorch; ``compile_head`` compiles it (compiling the whole forward crashed: an illegal memory access while
inductor tuned these kernels; torch 2.11, H200). CUDA only (Triton; the tests run it in Triton's CPU
interpreter); used by the engine when ``rrdb_impl='triton'``. With ``fp8`` (``upscale.rrdb_fp8``) the dense
blocks' GEMMs read e4m3 activations (an e4m3 twin of each buffer, written by the epilogues) and e4m3 weights.
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
# fp8 dense blocks store activations as e4m3 without a scale (a fused kernel writes a tensor before its maximum
# is known; fixed scales measured no better), saturating at 448; see docs/upscale.md.
_E4M3_MAX = 448.0


@triton.jit
def _epilogue(
    acc, offs_m, in_range, cols, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr, res_stride,
    res2_ptr, res2_stride, scale, proj_ptr, ws_ptr, q_ptr, q_stride,
    N: tl.constexpr, HAS_BIAS: tl.constexpr, ADD_PART: tl.constexpr, LRELU_COLS: tl.constexpr, MODE: tl.constexpr,
    PROJ: tl.constexpr, FP8: tl.constexpr, Q_COLS: tl.constexpr, Q_ONLY: tl.constexpr,
):
    col_ok = cols < N  # a padded dot computes columns past N: never stored
    mask = in_range[:, None] & col_ok[None, :]
    offs_m = offs_m.to(tl.int64)
    if FP8:  # undo the per-column weight scale
        acc *= tl.load(ws_ptr + cols, mask=col_ok, other=0.0)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_ok, other=0.0)[None, :]
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
    if PROJ > 0:  # the next conv's per-tap products instead of the activations (see ``tap_sum``)
        cols_z = tl.arange(0, PROJ)
        proj = tl.load(proj_ptr + cols[:, None] * PROJ + cols_z[None, :])
        acc = tl.dot(acc.to(proj.dtype), proj)
        cols = cols_z
        mask = in_range[:, None] & (cols < PROJ)[None, :]
    if Q_COLS > 0:  # the first Q_COLS columns, finished, also as the next convs' e4m3 input (``Q_ONLY``: only so)
        q = tl.clamp(acc, -448.0, 448.0).to(q_ptr.dtype.element_ty)
        tl.store(q_ptr + offs_m[:, None] * q_stride + cols[None, :], q, mask=mask & (cols < Q_COLS)[None, :])
        if Q_ONLY:
            mask = mask & (cols >= Q_COLS)[None, :]
    tl.store(out_ptr + offs_m[:, None] * out_stride + cols[None, :], acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _weight_tile(desc, k, n0, KMAJOR: tl.constexpr):
    # A (BLOCK_K, n) weight tile: from a (K, N) matrix, or from an (N, K) one transposed (fp8 dots need K-major B).
    if KMAJOR:
        w = desc.load([n0, k]).T
    else:
        w = desc.load([k, n0])
    return w


@triton.jit
def _conv3x3_jit(
    x_desc, wa_desc, wb_desc, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr, res_stride,
    res2_ptr, res2_stride, scale, proj_ptr, ws_ptr, q_ptr, q_stride, H, W,
    CIN: tl.constexpr, N: tl.constexpr, N_LO: tl.constexpr, N_HI: tl.constexpr, HAS_BIAS: tl.constexpr,
    ADD_PART: tl.constexpr, LRELU_COLS: tl.constexpr, MODE: tl.constexpr, UPSAMPLE: tl.constexpr, PROJ: tl.constexpr,
    FP8: tl.constexpr, Q_COLS: tl.constexpr, Q_ONLY: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, PAD: tl.constexpr, ROWS: tl.constexpr,
):
    # One program: BLOCK_M output pixels of one image row (ROWS = 2: of two rows, the four input rows they read
    # each loaded once and dotted into both rows' accumulators where it feeds them). Rows of the padded buffer
    # are (W + 2) pixels, so each tap of the tile is one contiguous (BLOCK_M, BLOCK_K) TMA block; no masks in
    # the main loop. The N output columns are one dot of N_HI (PAD) or two of N_LO and N - N_LO, sharing each
    # input tile. UPSAMPLE (one row only): nearest x2 then the 3x3 conv, as four 2x2 convs of the
    # low-resolution input (one per output phase, weights summed where the upsampled taps coincide) writing
    # the interleaved high-resolution pixels.
    tl.static_assert(ROWS == 1 or (ROWS == 2 and UPSAMPLE == 0))
    tl.static_assert(PROJ == 0 or N == N_LO)  # a projection takes all N columns in one dot
    NA: tl.constexpr = N_HI * PAD + N_LO * (1 - PAD)
    NB: tl.constexpr = (N - N_LO) * (1 - PAD)
    TAP_W: tl.constexpr = 3 - UPSAMPLE
    TAPS: tl.constexpr = TAP_W * TAP_W
    pid = tl.program_id(0)
    phase = (pid % 4) * UPSAMPLE
    pid = pid // (1 + 3 * UPSAMPLE)
    tiles_w = tl.cdiv(W, BLOCK_M)
    groups = tl.cdiv(H, ROWS)  # row groups per image
    group = pid // tiles_w  # image * groups + row group
    img = group // groups
    y = (group % groups) * ROWS
    x0 = (pid % tiles_w) * BLOCK_M
    wp = W + 2
    base = (img * (H + 2) + y + phase // 2) * wp + x0 + phase % 2  # padded index of the tile's first tap
    lanes = tl.arange(0, BLOCK_M)
    in_range = x0 + lanes < W
    in_range2 = in_range & (y + 1 + 0 * lanes < H)  # ROWS = 2: the second row, absent past the image's last row
    if UPSAMPLE:
        offs_m = (img * (2 * H + 2) + 2 * y + phase // 2 + 1) * (2 * W + 2) + 2 * (x0 + lanes) + phase % 2 + 1
    else:
        offs_m = base + wp + 1 + lanes
    cols_a = tl.arange(0, NA)
    if NB > 0:
        cols_b = NA + tl.arange(0, NB)
    acc_a = tl.zeros((BLOCK_M, NA), dtype=tl.float32)
    if NB > 0:
        acc_b = tl.zeros((BLOCK_M, NB), dtype=tl.float32)
    k_steps: tl.constexpr = CIN // BLOCK_K
    if ROWS == 1:
        for step in range(0, TAPS * k_steps):  # one flat loop over (tap, channel chunk): loads pipeline across taps
            tap = step // k_steps
            kc = (step % k_steps) * BLOCK_K
            a = x_desc.load([base + (tap // TAP_W) * wp + tap % TAP_W, kc])
            k = (phase * TAPS + tap) * CIN + kc
            acc_a = tl.dot(a, _weight_tile(wa_desc, k, 0, FP8), acc_a)
            if NB > 0:
                acc_b = tl.dot(a, _weight_tile(wb_desc, k, NA, FP8), acc_b)
    else:
        acc_a2 = tl.zeros((BLOCK_M, NA), dtype=tl.float32)  # the second output row
        if NB > 0:
            acc_b2 = tl.zeros((BLOCK_M, NB), dtype=tl.float32)
        for step in range(0, 3 * k_steps):  # (column tap, channel chunk); the four input rows unrolled
            dx = step // k_steps
            kc = (step % k_steps) * BLOCK_K
            a0 = x_desc.load([base + dx, kc])
            a1 = x_desc.load([base + wp + dx, kc])
            a2 = x_desc.load([base + 2 * wp + dx, kc])
            a3 = x_desc.load([base + 3 * wp + dx, kc])
            k = dx * CIN + kc  # kernel row 0 of this column tap; rows 1 and 2 follow 3 * CIN apart
            w0 = _weight_tile(wa_desc, k, 0, FP8)
            w1 = _weight_tile(wa_desc, k + 3 * CIN, 0, FP8)
            w2 = _weight_tile(wa_desc, k + 6 * CIN, 0, FP8)
            acc_a = tl.dot(a2, w2, tl.dot(a1, w1, tl.dot(a0, w0, acc_a)))
            acc_a2 = tl.dot(a3, w2, tl.dot(a2, w1, tl.dot(a1, w0, acc_a2)))
            if NB > 0:
                w0 = _weight_tile(wb_desc, k, NA, FP8)
                w1 = _weight_tile(wb_desc, k + 3 * CIN, NA, FP8)
                w2 = _weight_tile(wb_desc, k + 6 * CIN, NA, FP8)
                acc_b = tl.dot(a2, w2, tl.dot(a1, w1, tl.dot(a0, w0, acc_b)))
                acc_b2 = tl.dot(a3, w2, tl.dot(a2, w1, tl.dot(a1, w0, acc_b2)))
    _epilogue(acc_a, offs_m, in_range, cols_a, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
              res_stride, res2_ptr, res2_stride, scale, proj_ptr, ws_ptr, q_ptr, q_stride, N, HAS_BIAS,
              ADD_PART, LRELU_COLS, MODE, PROJ, FP8, Q_COLS, Q_ONLY)
    if NB > 0:
        _epilogue(acc_b, offs_m, in_range, cols_b, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
                  res_stride, res2_ptr, res2_stride, scale, proj_ptr, ws_ptr, q_ptr, q_stride, N, HAS_BIAS,
                  ADD_PART, LRELU_COLS, MODE, PROJ, FP8, Q_COLS, Q_ONLY)
    if ROWS == 2:
        _epilogue(acc_a2, offs_m + wp, in_range2, cols_a, b_ptr, part_ptr, part_stride, out_ptr, out_stride, res_ptr,
                  res_stride, res2_ptr, res2_stride, scale, proj_ptr, ws_ptr, q_ptr, q_stride, N, HAS_BIAS,
                  ADD_PART, LRELU_COLS, MODE, PROJ, FP8, Q_COLS, Q_ONLY)
        if NB > 0:
            _epilogue(acc_b2, offs_m + wp, in_range2, cols_b, b_ptr, part_ptr, part_stride, out_ptr, out_stride,
                      res_ptr, res_stride, res2_ptr, res2_stride, scale, proj_ptr, ws_ptr, q_ptr, q_stride, N, HAS_BIAS,
                      ADD_PART, LRELU_COLS, MODE, PROJ, FP8, Q_COLS, Q_ONLY)


def _widths(n: int) -> tuple[int, int, bool]:
    """(largest power of two <= n, smallest power of two >= max(n, 16), whether n splits into two dots)."""
    lo = 1 << (n.bit_length() - 1)
    hi = max(16, 1 << (n - 1).bit_length())
    rest = n - lo
    return lo, hi, lo >= 16 and (rest == 0 or (rest >= 16 and rest & (rest - 1) == 0))


def _arg(name: str, named_args: dict, kwargs: dict) -> int:
    """A kernel argument as the autotuner's pruning hook sees it (keyword or positional)."""
    return kwargs[name] if name in kwargs else named_args[name]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Keep tile shapes whose channel chunk divides the input channels, the dot forms and row counts that apply."""
    cin, n = _arg("CIN", named_args, kwargs), _arg("N", named_args, kwargs)
    lo, hi, splits = _widths(n)
    forms = {0, 1} if splits and lo != hi else {int(not splits)}
    rows = {1} if _arg("UPSAMPLE", named_args, kwargs) else {1, 2}
    return [c for c in configs
            if cin % c.kwargs["BLOCK_K"] == 0 and c.kwargs["PAD"] in forms and c.kwargs["ROWS"] in rows]


def _set_blocks(nargs: dict) -> None:
    """Give the TMA descriptors the block shapes of the config being launched."""
    bm, bk, n, lo, pad = nargs["BLOCK_M"], nargs["BLOCK_K"], nargs["N"], nargs["N_LO"], nargs["PAD"]
    na, nb = (nargs["N_HI"], 0) if pad else (lo, n - lo)
    nargs["x_desc"].block_shape = [bm, bk]
    kmajor = nargs["FP8"]  # fp8 weights are stored (N, K)
    nargs["wa_desc"].block_shape = [na, bk] if kmajor else [bk, na]
    nargs["wb_desc"].block_shape = [nb or na, bk] if kmajor else [bk, nb or na]


# Tuned per shape on the GPU (each trial restores the partial sums it adds to in place); the Triton
# interpreter (CPU tests) runs 16 x 16 tiles of INTERPRETER_ROWS output rows (the tests set 1 and 2).
INTERPRETER_ROWS = 2
_conv3x3_tuned = triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": bm, "BLOCK_K": bk, "PAD": pad, "ROWS": rows}, num_warps=nw, num_stages=ns,
                      pre_hook=_set_blocks)
        for bm, bk, nw, ns, rows in [
            (64, 32, 4, 3, 1), (64, 32, 4, 4, 1), (64, 64, 4, 3, 1), (128, 32, 4, 3, 1), (128, 32, 4, 4, 1),
            (128, 32, 8, 3, 1), (128, 32, 8, 4, 1), (128, 32, 8, 5, 1), (128, 64, 8, 3, 1), (128, 64, 8, 4, 1),
            (128, 64, 4, 3, 1), (128, 64, 4, 4, 1),
            (64, 32, 4, 2, 2), (64, 32, 4, 3, 2), (64, 64, 4, 2, 2), (128, 32, 8, 2, 2), (128, 32, 8, 3, 2),
            (128, 64, 8, 2, 2),
        ]
        for pad in (0, 1)
    ],
    key=["CIN", "N", "H", "W", "MODE", "UPSAMPLE", "PROJ", "FP8", "Q_COLS"],
    restore_value=["part_ptr"],
    prune_configs_by={"early_config_prune": _prune},
)(_conv3x3_jit)


def _check_tileable(cin: int, n: int) -> None:
    """Refuse, naming the shape, a conv the kernel cannot tile (every released model can be tiled)."""
    if cin % 32 or _widths(n)[1] > 256:
        raise ValueError(f"upscale: rrdb_impl='triton' cannot tile a conv of {cin} -> {n} channels (needs input "
                         "channels in multiples of 32 and at most 256 outputs: num_feat 64 and grow 32, as in "
                         "every released model, work)")


def conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor, hw: tuple[int, int],
    part: torch.Tensor | None = None, lrelu_cols: int = 0, mode: int = _NONE, res: torch.Tensor | None = None,
    res2: torch.Tensor | None = None, scale: float = 0.2, upsample: bool = False, proj: torch.Tensor | None = None,
    weight_scale: torch.Tensor | None = None, q: torch.Tensor | None = None, q_only: bool = False,
) -> None:
    """3x3 conv of ``x`` into ``out``'s columns, fused with the epilogue; both (padded pixels, channels) views.

    Pixels are laid out as (images, H + 2, W + 2) with a zero border (the conv's padding, never written);
    ``hw`` is the input's (H, W). ``bias`` and ``part`` (partial sums, may alias ``out``) are added, the first
    ``lrelu_cols`` output columns go through LeakyReLU(0.2), then ``mode`` adds residuals (``res``,
    ``res2``). ``upsample``: nearest x2 first (``weight`` from ``_pack_upsample``), ``out`` at (2H, 2W).
    ``proj`` (from ``_pack_projection``): ``out`` gets the activations times ``proj`` instead (``tap_sum`` input).
    fp8: ``x`` is e4m3, ``weight`` and ``weight_scale`` come from ``_pack_fp8``;
    ``q`` gets the first ``q.shape[1]`` output columns, finished, as e4m3 input of later convs (``q_only``: and
    ``out`` does not).
    """
    (h, w), cin = hw, x.shape[1]
    fp8 = weight.dtype == torch.float8_e4m3fn
    if fp8 != (x.dtype == torch.float8_e4m3fn) or fp8 != (weight_scale is not None):
        raise ValueError(f"upscale: an fp8 conv needs e4m3 input and weights and a weight scale; got {x.dtype} input, "
                         f"{weight.dtype} weights")
    n = out.shape[1] if proj is None else (weight.shape[0] if fp8 else weight.shape[1])
    if proj is not None and proj.shape != (n, out.shape[1]):
        raise ValueError(f"upscale: cannot project {n} conv outputs through a {tuple(proj.shape)} matrix into "
                         f"{out.shape[1]} columns")
    lo, hi, splits = _widths(n)
    # Block shapes are placeholders until the launched config sets them (``_set_blocks``).
    descs = [TensorDescriptor.from_tensor(t, [16, 16]) for t in (x, weight, weight)]
    # An absent operand passes ``out`` (``weight`` for the bias): never read, its flag or mode is off.
    part_t, res_t, res2_t, q_t = (t if t is not None else out for t in (part, res, res2, q))
    args = (*descs, bias if bias is not None else weight, part_t, part_t.stride(0), out, out.stride(0),
            res_t, res_t.stride(0), res2_t, res2_t.stride(0), scale, proj if proj is not None else weight,
            weight_scale if fp8 else weight, q_t, q_t.stride(0), h, w)
    flags = dict(CIN=cin, N=n, N_LO=lo, N_HI=hi, HAS_BIAS=bias is not None, ADD_PART=part is not None,
                 LRELU_COLS=lrelu_cols, MODE=mode, UPSAMPLE=int(upsample), PROJ=0 if proj is None else proj.shape[1],
                 FP8=int(fp8), Q_COLS=0 if q is None else q.shape[1], Q_ONLY=int(q_only))
    images = x.shape[0] // ((h + 2) * (w + 2)) * (4 if upsample else 1)
    if x.is_cuda:
        grid = lambda meta: (images * triton.cdiv(h, meta["ROWS"]) * triton.cdiv(w, meta["BLOCK_M"]),)  # noqa: E731
        _conv3x3_tuned[grid](*args, **flags)
    else:
        rows = 1 if upsample else INTERPRETER_ROWS
        block = dict(BLOCK_M=16, BLOCK_K=32 if fp8 else 16, PAD=int(not splits), ROWS=rows)
        _set_blocks(dict(zip(("x_desc", "wa_desc", "wb_desc"), descs), **flags, **block))
        _conv3x3_jit[(images * triton.cdiv(h, rows) * triton.cdiv(w, 16),)](*args, **flags, **block)


def _pad_columns(packed: torch.Tensor) -> torch.Tensor:
    """Zero columns up to a multiple of 8 (a TMA row must be a multiple of 16 bytes); the kernel masks them."""
    return torch.nn.functional.pad(packed, (0, -packed.shape[1] % 8)).contiguous()


def _pack(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (9 * Cin, Cout rounded up to 8): tap-major, then input channel."""
    _check_tileable(weight.shape[1], weight.shape[0])
    return _pad_columns(weight.detach().permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).to(dtype))


def _pack_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Cout, Cin, 3, 3) -> e4m3 (Cout, 9 * Cin), K-major (fp8 dots need it), each output channel scaled to
    e4m3's range; and the fp32 (Cout,) factors that undo the scale."""
    _check_tileable(weight.shape[1], weight.shape[0])
    w = weight.detach().float().permute(0, 2, 3, 1).reshape(weight.shape[0], -1)  # tap-major, then input channel
    amax = w.abs().amax(dim=1).clamp_min(1e-12)
    packed = (w * (_E4M3_MAX / amax)[:, None]).clamp(-_E4M3_MAX, _E4M3_MAX).to(torch.float8_e4m3fn).contiguous()
    return packed, (amax / _E4M3_MAX).contiguous()


# Nearest x2 then a 3x3 conv: output phase p (0 or 1, per axis) reads low-resolution taps p - 1 + t (t = 0, 1),
# and tap t of phase p gathers these rows (or columns) of the 3x3 kernel.
_PHASE_TAPS = {(0, 0): (0,), (0, 1): (1, 2), (1, 0): (0, 1), (1, 1): (2,)}


def _pack_upsample(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (4 phases * 4 taps * Cin, Cout): the four 2x2 convs of ``conv3x3(upsample=True)``."""
    _check_tileable(weight.shape[1], weight.shape[0])
    w = weight.detach().float()
    blocks = [
        sum(w[:, :, i, j] for i in _PHASE_TAPS[py, ty] for j in _PHASE_TAPS[px, tx]).t()
        for py in (0, 1) for px in (0, 1) for ty in (0, 1) for tx in (0, 1)
    ]
    return _pad_columns(torch.cat(blocks).to(dtype))


def _pack_projection(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (Cin, 9 * Cout rounded up to a power of two >= 16): column Cout * tap + output.

    A conv with few outputs (conv_last: 3) as a per-pixel projection of its input, fused into the previous
    conv's epilogue, then ``tap_sum``: 9 * Cout products per pixel are read once instead of the Cin-channel
    input nine times (once per tap).
    """
    cout, cin = weight.shape[:2]
    if cin & (cin - 1):
        raise ValueError(f"upscale: rrdb_impl='triton' needs a power-of-two num_feat (conv_last is fused into "
                         f"conv_hr's epilogue as one dot), got {cin}")
    cols = max(16, 1 << (9 * cout - 1).bit_length())
    proj = weight.detach().permute(1, 2, 3, 0).reshape(cin, 9 * cout)  # (cin, tap, cout): tap = 3 * ky + kx
    return torch.nn.functional.pad(proj, (0, cols - 9 * cout)).to(dtype).contiguous()


@triton.jit
def _tap_sum_jit(z_ptr, b_ptr, out_ptr, H, W, COUT: tl.constexpr, PROJ: tl.constexpr, BLOCK: tl.constexpr):
    # One program: BLOCK pixels of one output row. Each tap's (BLOCK, PROJ) products are one contiguous read of
    # the padded buffer; the tap's own COUT columns are kept, then each output channel sums its columns.
    pid = tl.program_id(0)
    tiles_w = tl.cdiv(W, BLOCK)
    row = pid // tiles_w  # image * H + y
    img = row // H
    y = row % H
    xs = (pid % tiles_w) * BLOCK + tl.arange(0, BLOCK)
    ok = xs < W
    cols = tl.arange(0, PROJ)
    acc = tl.zeros((BLOCK, PROJ), dtype=tl.float32)
    for tap in tl.static_range(9):
        pix = ((img * (H + 2) + y + tap // 3) * (W + 2) + xs + tap % 3).to(tl.int64)
        z = tl.load(z_ptr + pix[:, None] * PROJ + cols[None, :], mask=ok[:, None], other=0.0)
        acc += tl.where((cols // COUT == tap)[None, :], z.to(tl.float32), 0.0)
    for c in tl.static_range(COUT):
        keep = (cols % COUT == c) & (cols < 9 * COUT)
        value = tl.sum(tl.where(keep[None, :], acc, 0.0), axis=1) + tl.load(b_ptr + c)
        tl.store(out_ptr + ((img * COUT + c) * H + y).to(tl.int64) * W + xs, value.to(out_ptr.dtype.element_ty),
                 mask=ok)


def tap_sum(z: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> None:
    """Finish a projected conv: ``out`` (B, Cout, H, W) = bias + the sum over the 9 taps of each output's
    products in ``z``, a padded (B * (H + 2) * (W + 2), PROJ) buffer with a zero border (see ``conv3x3``)."""
    b, cout, h, w = out.shape
    block = 64 if z.is_cuda else 16
    _tap_sum_jit[(b * h * triton.cdiv(w, block),)](z, bias, out, h, w, COUT=cout, PROJ=z.shape[1], BLOCK=block)


class _SegmentRDB:
    """One dense block as five GEMMs: four segment convs (conv1..conv4 regrouped) and conv5; packed weights.

    ``fp8``: the GEMMs take e4m3 inputs and weights (fp32 accumulation; partial sums and the block's output stay
    fp16): each finished activation is also stored as e4m3 in a twin buffer ``q`` (see ``convs``).
    """

    def __init__(self, rdb: nn.Module, dtype: torch.dtype, fp8: bool = False) -> None:
        convs = [rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4]
        self.num_feat, self.grow = f, g = rdb.conv1.in_channels, rdb.conv1.out_channels
        self.fp8 = fp8
        bounds = [0] + [f + s * g for s in range(4)]  # input channels of segment s: bounds[s]..bounds[s + 1]
        weights = [torch.cat([c.weight[:, bounds[s] : bounds[s + 1]] for c in convs[s:]], 0) for s in range(4)]
        weights.append(rdb.conv5.weight)
        packed = [_pack_fp8(w) if fp8 else (_pack(w, dtype), None) for w in weights]
        self.weights, self.weight_scales = [p[0] for p in packed], [p[1] for p in packed]
        self.bias = torch.cat([c.bias.detach() for c in convs]).float().contiguous()
        self.bias5 = rdb.conv5.bias.detach().float().contiguous()

    def convs(self, buf: torch.Tensor, out: torch.Tensor, hw: tuple[int, int], mode: int,
              res2: torch.Tensor | None = None, q: torch.Tensor | None = None,
              q_out: torch.Tensor | None = None) -> list[Callable[[], None]]:
        """The block's five convs, in order, over ``buf`` ([x | x1 | x2..x4 partials]); conv5 reads
        ``[x | x1..x4]``, adds the residual(s) (``mode``) and writes the block's output into ``out``.

        fp8: the convs read ``q``, ``[x | x1..x4]`` in e4m3 (x given), each segment conv writes its finished x_s
        there (not into ``buf``) and conv5 also writes the block's output as e4m3 into ``q_out``.
        """
        f, g = self.num_feat, self.grow
        src = q if self.fp8 else buf
        fp8 = [dict(weight_scale=self.weight_scales[s], q=q[:, f + s * g : f + (s + 1) * g], q_only=True)
               if self.fp8 else {} for s in range(4)]
        calls = [partial(conv3x3, src[:, :f], self.weights[0], self.bias, buf[:, f:], hw, lrelu_cols=g, **fp8[0])]
        for s in range(1, 4):
            cols = buf[:, f + s * g :]
            calls.append(partial(conv3x3, src[:, f + (s - 1) * g : f + s * g], self.weights[s], None, cols, hw,
                                 part=cols, lrelu_cols=g, **fp8[s]))
        fp8_5 = dict(weight_scale=self.weight_scales[4], q=q_out) if self.fp8 else {}
        calls.append(partial(conv3x3, src, self.weights[4], self.bias5, out, hw, mode=mode, res=buf[:, :f],
                             res2=res2, **fp8_5))
        return calls


def _padded(
    b: int, h: int, w: int, channels: int, like: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """An uninitialised (b * (h + 2) * (w + 2), channels) buffer whose one-pixel border is zero."""
    t = torch.empty(b, h + 2, w + 2, channels, device=like.device, dtype=dtype or like.dtype)
    t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1] = 0, 0, 0, 0
    return t.view(-1, channels)


def _interior(t: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """The (b, h, w, channels) pixels of a padded buffer, without its border."""
    return t.view(b, h + 2, w + 2, t.shape[1])[:, 1:-1, 1:-1]


def _to_padded(x: torch.Tensor) -> torch.Tensor:
    """A (B, C, H, W) tensor as a padded (B * (H + 2) * (W + 2), C) pixel buffer: the convs' input layout."""
    b, c, h, w = x.shape
    t = _padded(b, h, w, c, x)
    _interior(t, b, h, w).copy_(x.permute(0, 2, 3, 1))
    return t


class TritonRRDBNet(nn.Module):
    """Inference-only RRDBNet whose body and tail run as fused Triton convs (only conv_first stays PyTorch);
    ``fp8``: the dense blocks' GEMMs in e4m3 (see ``_SegmentRDB``)."""

    def __init__(self, net: RRDBNet, dtype: torch.dtype = torch.float16, fp8: bool = False) -> None:
        super().__init__()
        self.net = net
        self.grow = net.body[0].rdb1.conv1.out_channels
        self.fp8 = fp8
        rdbs = [rdb for block in net.body for rdb in (block.rdb1, block.rdb2, block.rdb3)]
        self.blocks = [_SegmentRDB(rdb, dtype, fp8) for rdb in rdbs]

        def packed(conv: nn.Conv2d, pack: Callable = _pack) -> tuple[torch.Tensor, torch.Tensor]:
            return pack(conv.weight, dtype), conv.bias.detach().float().contiguous()

        self.body_conv, self.conv_hr = packed(net.conv_body), packed(net.conv_hr)
        self.conv_up = [packed(c, _pack_upsample) for c in (net.conv_up1, net.conv_up2)]
        # conv_last: per-tap products from conv_hr's epilogue, summed by ``tap_sum``.
        self.last_proj, self.last_bias = packed(net.conv_last, _pack_projection)
        self.out_ch = net.conv_last.out_channels
        net.body = nn.Sequential()  # the packed copies replace it
        self.head = net.head

    def compile_head(self, mode: str = "default") -> None:
        """torch.compile the PyTorch head (pixel-unshuffle and conv_first); the rest is Triton already."""
        self.head = torch.compile(self.net.head, mode=mode, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)  # (B, F, H, W), channels_last on GPU
        b, f, h, w = feat.shape
        if b * (4 * h + 2) * (4 * w + 2) >= 2**31:  # TMA coordinates are 32-bit
            raise ValueError(f"upscale: {b} x {h} x {w} pixels per forward is too many; lower batch_size or tile")
        feat_px = _to_padded(feat)
        # bufs[0]: the RRDB input and rdb1's work; bufs[1], bufs[2]: rdb2, rdb3; bufs[3]: the RRDB output.
        bufs = [_padded(b, h, w, f + 4 * self.grow, feat) for _ in range(4)]
        bufs[0][:, :f] = feat_px
        # fp8: each buffer's e4m3 twin, [x | x1..x4], the convs' inputs.
        qs = [_padded(b, h, w, f + 4 * self.grow, feat, torch.float8_e4m3fn) if self.fp8 else None for _ in range(4)]
        if self.fp8:
            qs[0][:, :f] = feat_px.clamp(-_E4M3_MAX, _E4M3_MAX).to(torch.float8_e4m3fn)
        for i, seg in enumerate(self.blocks):
            j = i % 3
            k = j + 1 if j < 2 else 3  # the buffer that gets this block's output
            q_out = qs[k][:, :f] if self.fp8 else None
            calls = seg.convs(bufs[j], bufs[k][:, :f], (h, w), _RESIDUAL if j < 2 else _DOUBLE_RESIDUAL,
                              res2=bufs[0][:, :f] if j == 2 else None, q=qs[j], q_out=q_out)
            for call in calls:
                call()
            if j == 2:
                bufs[0], bufs[3] = bufs[3], bufs[0]
                qs[0], qs[3] = qs[3], qs[0]
        feat = _padded(b, h, w, f, feat_px)
        conv3x3(bufs[0][:, :f], *self.body_conv, feat, (h, w), mode=_RESIDUAL, res=feat_px, scale=1.0)
        for weight, bias in self.conv_up:  # nearest x2 + conv + LeakyReLU, twice
            up = _padded(b, 2 * h, 2 * w, f, feat)
            conv3x3(feat, weight, bias, up, (h, w), lrelu_cols=f, upsample=True)
            feat, h, w = up, 2 * h, 2 * w
        products = _padded(b, h, w, self.last_proj.shape[1], feat)  # zero border: conv_last's padding
        conv3x3(feat, *self.conv_hr, products, (h, w), lrelu_cols=f, proj=self.last_proj)
        rgb = torch.empty(b, self.out_ch, h, w, device=x.device, dtype=feat.dtype)
        tap_sum(products, self.last_bias, rgb)
        return rgb


def tritonize_rrdbnet(net: RRDBNet, dtype: torch.dtype = torch.float16, fp8: bool = False) -> TritonRRDBNet:
    """The Triton form of ``net`` (already on a CUDA device, in ``dtype``; ``fp8``: e4m3 dense blocks); ``net``'s
    body is dropped."""
    return TritonRRDBNet(net, dtype, fp8).eval()
