"""Per-GEMM timing of one RRDB dense block: the Triton convs (fused epilogues) against cuDNN convs.

Each row times one of the five convs of ``rrdb_triton`` (x4plus shapes: segments 64 -> 128, then 32 -> 96 /
64 / 32 output channels, then conv5 192 -> 64 with the residual) on ``--images`` 128 x 128 feature maps,
replayed from a CUDA graph, next to a plain cuDNN ``conv2d`` of the same GEMM shape (no bias, activation,
partial sums or residual). A second table times the convs around the body the same way: conv_body, the two
nearest x2 upsamplings + convs (Triton: four 2x2 phase convs; PyTorch: ``interpolate`` then the conv), and
conv_hr + conv_last (Triton: conv_hr's epilogue projects onto conv_last's taps, then ``tap_sum``; PyTorch: the
two convs), with the Triton epilogues' LeakyReLU and PyTorch's convs alone. CUDA only.

GPU:  python benchmarks/upscale_segments.py --images 64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F


def graph_ms(fn: Callable[[], object], iters: int) -> float:
    """Milliseconds per call of ``fn`` captured once in a CUDA graph and replayed ``iters`` times."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
        fn()  # autotuning and allocation happen outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="feature maps per call (the upscale batch)")
    parser.add_argument("--size", type=int, default=128, help="feature-map side (the input side for x4plus)")
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("upscale_segments: needs a CUDA device (the segment convs are Triton kernels)")
    from lrm_dist.upscale.rrdb_triton import _RESIDUAL, _SegmentRDB
    from lrm_dist.upscale.rrdbnet import ResidualDenseBlock

    f, g, hw = 64, 32, (args.size, args.size)
    pixels = args.images * args.size**2
    padded = args.images * (args.size + 2) ** 2  # the segment convs' layout: a one-pixel zero border
    seg = _SegmentRDB(ResidualDenseBlock(f, g).cuda(), torch.float16)
    buf = torch.randn(padded, f + 4 * g, device="cuda", dtype=torch.float16) * 0.1
    nxt = torch.empty(padded, f, device="cuda", dtype=torch.float16)
    names = ["segment 0", "segment 1", "segment 2", "segment 3", "conv5 + res"]
    shapes = [(w.shape[0] // 9, w.shape[1]) for w in seg.weights]  # (cin, cout) of each segment conv
    print(f"# one dense block, {args.images} x {args.size} x {args.size} pixels, fp16, {torch.cuda.get_device_name()}")
    header = f"{'conv':<15} {'cin->cout':>10} {'triton ms':>10} {'TFLOP/s':>8} {'cudnn ms':>9} {'TFLOP/s':>8}"
    print(header)
    print("-" * len(header))
    totals = [0.0, 0.0]
    for name, fn, (cin, cout) in zip(names, seg.convs(buf, nxt, hw, _RESIDUAL), shapes):
        flop = 2 * 9 * cin * cout * pixels
        x = torch.randn(args.images, cin, *hw, device="cuda", dtype=torch.float16).contiguous(
            memory_format=torch.channels_last)
        w = torch.randn(cout, cin, 3, 3, device="cuda", dtype=torch.float16)
        ms = [graph_ms(fn, args.iters), graph_ms(lambda x=x, w=w: F.conv2d(x, w, padding=1), args.iters)]
        totals = [t + m for t, m in zip(totals, ms)]
        print(f"{name:<15} {f'{cin}->{cout}':>10} {ms[0]:10.3f} {flop / ms[0] / 1e9:8.1f} {ms[1]:9.3f} "
              f"{flop / ms[1] / 1e9:8.1f}")
    print(f"{'dense block':<15} {'':>10} {totals[0]:10.3f} {'':>8} {totals[1]:9.3f}")
    print(f"\n# the convs around the body, {args.images} images of {args.size} x {args.size} input pixels")
    header = f"{'conv':<15} {'side->side':>10} {'triton ms':>10} {'pytorch ms':>11}"
    print(header)
    print("-" * len(header))
    totals = [0.0, 0.0]
    for name, sides, triton_fn, torch_fn in edge_convs(args.images, args.size, "cuda", torch.float16):
        ms = [graph_ms(triton_fn, args.iters), graph_ms(torch_fn, args.iters)]
        totals = [t + m for t, m in zip(totals, ms)]
        print(f"{name:<15} {sides:>10} {ms[0]:10.3f} {ms[1]:11.3f}")
    print(f"{'total':<15} {'':>10} {totals[0]:10.3f} {totals[1]:11.3f}")


def edge_convs(images: int, size: int, device: str, dtype: torch.dtype) -> list[tuple[str, str, Callable, Callable]]:
    """(name, sides, Triton call, PyTorch call) for conv_body, conv_up1, conv_up2 and conv_hr + conv_last."""
    from lrm_dist.upscale.rrdb_triton import _pack, _pack_projection, _pack_upsample, _padded, _to_padded, conv3x3, \
        tap_sum

    f, calls = 64, []
    for name, side, upsample in (("conv_body", size, False), ("x2 + conv_up1", size, True),
                                 ("x2 + conv_up2", 2 * size, True), ("conv_hr + last", 4 * size, False)):
        conv = torch.nn.Conv2d(f, f, 3, padding=1).to(device)
        x = torch.randn(images, f, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        x_px = _to_padded(x)
        out_side = 2 * side if upsample else side
        weight = (_pack_upsample if upsample else _pack)(conv.weight, dtype)
        bias = conv.bias.detach().float()
        last = None
        if name == "conv_hr + last":  # conv_hr's epilogue projects onto conv_last's taps; tap_sum adds them
            last = torch.nn.Conv2d(f, 3, 3, padding=1).to(device)
            proj = _pack_projection(last.weight, dtype)
            products = _padded(images, side, side, proj.shape[1], x_px)
            rgb = torch.empty(images, 3, side, side, device=device, dtype=dtype)

            def triton_fn(x_px=x_px, weight=weight, bias=bias, hw=(side, side), proj=proj, products=products,
                          rgb=rgb, last_bias=last.bias.detach().float()):
                conv3x3(x_px, weight, bias, products, hw, lrelu_cols=f, proj=proj)
                tap_sum(products, last_bias, rgb)
        else:
            out = torch.empty(images * (out_side + 2) ** 2, f, device=device, dtype=dtype)
            triton_fn = partial(conv3x3, x_px, weight, bias, out, (side, side),
                                lrelu_cols=0 if name == "conv_body" else f, upsample=upsample)

        def torch_fn(x=x, w=conv.weight.detach().to(dtype), b=conv.bias.detach().to(dtype), upsample=upsample,
                     last=None if last is None else (last.weight.detach().to(dtype), last.bias.detach().to(dtype))):
            y = F.conv2d(F.interpolate(x, scale_factor=2) if upsample else x, w, b, padding=1)
            return y if last is None else F.conv2d(F.leaky_relu(y, 0.2), *last, padding=1)

        calls.append((name, f"{side}->{out_side}", triton_fn, torch_fn))
    return calls


if __name__ == "__main__":
    torch.backends.cudnn.benchmark = True
    main()
