"""How far fp8 (e4m3) dense-block convolutions move Real-ESRGAN x4plus's output from fp32: the accuracy side of an
fp8 kernel, measured before building one.

Runs the ``fused`` RRDB form on CPU in fp32 with its segment convolutions' inputs, weights and stored partial sums
rounded as a GPU kernel would hold them (head and tail stay fp32), on the RGB of real images (composited on white),
and compares each variant's uint8 output with the fp32 network's. Rows:

- ``fp16``: inputs, weights and partial sums in fp16 (what the ``fused`` and ``triton`` GPU forms store);
- ``fp8 weights``: weights e4m3 with one scale per output channel, the rest fp16;
- ``fp8 weights + inputs``: also each conv input e4m3 with one scale per tensor (its max), partial sums fp16;
- ``fp8, static input scales``: as above, but each conv's input scale is fixed beforehand, ``--headroom`` times
  the largest magnitude that conv saw on ``--calibrate`` other images of the folder (larger values saturate),
  as a fused kernel would need it: it cannot know a tensor's max while it writes the tensor.

CPU:  python benchmarks/upscale_fp8_error.py runs/default/eval/inputs --limit 4 --calibrate 2
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lrm_dist.upscale import rrdb_fused
from lrm_dist.upscale.rrdb_fused import fuse_rrdbnet
from lrm_dist.upscale.weights import load_model

_E4M3_MAX = 448.0

Rounder = Callable[[torch.Tensor], torch.Tensor]


def to_fp16(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def to_e4m3(t: torch.Tensor, dims: tuple[int, ...] | None = None, amax: torch.Tensor | None = None) -> torch.Tensor:
    """``t`` through float8 e4m3 with a scale that maps ``amax`` (default: its max magnitude over ``dims``, else
    all) to 448; magnitudes above ``amax`` saturate."""
    if amax is None:
        amax = t.abs().amax(dim=dims, keepdim=True) if dims else t.abs().max()
    scale = _E4M3_MAX / amax.clamp_min(1e-12)
    return (t * scale).clamp(-_E4M3_MAX, _E4M3_MAX).to(torch.float8_e4m3fn).float() / scale


def static_input_rounder(amaxes: list[torch.Tensor]) -> Rounder:
    """e4m3 rounding of the i-th conv input of each forward with the fixed ``amaxes[i]`` (the call order is fixed)."""
    calls = itertools.count()
    return lambda t: to_e4m3(t, amax=amaxes[next(calls) % len(amaxes)])


def recording_rounder(amaxes: list[torch.Tensor]) -> Rounder:
    """Leaves conv inputs exact and appends each one's max magnitude to ``amaxes``, in call order."""

    def record(t: torch.Tensor) -> torch.Tensor:
        amaxes.append(t.abs().max())
        return t

    return record


def exact(t: torch.Tensor) -> torch.Tensor:
    return t


VARIANTS: dict[str, tuple[Rounder, Rounder]] = {  # (conv input, weight); partial sums as noted in the docstring
    "fp32": (exact, exact),
    "fp16": (to_fp16, to_fp16),
    "fp8 weights": (to_fp16, lambda w: to_e4m3(w, (1, 2, 3))),
    "fp8 weights + inputs": (to_e4m3, lambda w: to_e4m3(w, (1, 2, 3))),
}


def rounding_conv2d(round_input: Rounder, round_weight: Rounder, round_output: Rounder) -> Callable:
    """``F.conv2d`` with its input, weight and output rounded (fp32 accumulation in between)."""

    def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return round_output(F.conv2d(round_input(x), round_weight(weight), bias, **kwargs))

    return conv2d


def load_images(folder: Path, limit: int, calibrate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) floats in [0, 1], alpha composited on white: the first ``limit`` PNGs of ``folder`` (scored)
    and the next ``calibrate`` (the static scales' calibration set)."""
    paths = sorted(folder.glob("*.png"))[: limit + calibrate]
    if len(paths) < limit + calibrate or not paths:
        raise SystemExit(f"upscale_fp8_error: {folder} has {len(paths)} PNG images; --limit {limit} and --calibrate "
                         f"{calibrate} need {limit + calibrate}")
    arrays = []
    for path in paths:
        rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
        arrays.append(rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]))
    if len({a.shape for a in arrays}) != 1:
        raise SystemExit(f"upscale_fp8_error: the images in {folder} differ in size; pass a folder of one size")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images[:limit], images[limit:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="a folder of same-size PNG images (e.g. renders)")
    parser.add_argument("--limit", type=int, default=4, help="score this many images")
    parser.add_argument("--calibrate", type=int, default=2, help="fix the static scales on this many other images")
    parser.add_argument("--headroom", type=float, default=8.0,
                        help="static scales map this many times the calibration max to e4m3's largest value")
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument("--weights-source", default="ncnn", choices=["auto", "url", "ncnn"])
    args = parser.parse_args()

    net, _, _ = load_model(args.model, args.weights_source)
    fused = fuse_rrdbnet(net.eval()).eval()
    x, calibration = load_images(args.images, args.limit, args.calibrate)
    print(f"# {args.model}, fused RRDB form on CPU, {x.shape[0]} images of {x.shape[3]} x {x.shape[2]} px from "
          f"{args.images} ({calibration.shape[0]} more for static scales); output compared in uint8 with the fp32 "
          "network's")
    amaxes: list[torch.Tensor] = []
    variants = dict(VARIANTS)
    variants["fp8, static input scales"] = (static_input_rounder(amaxes), VARIANTS["fp8 weights + inputs"][1])

    def run(images: torch.Tensor, round_input: Rounder, round_weight: Rounder, round_output: Rounder) -> torch.Tensor:
        rrdb_fused.F = SimpleNamespace(conv2d=rounding_conv2d(round_input, round_weight, round_output),
                                       leaky_relu=F.leaky_relu)
        try:
            with torch.inference_mode():
                return fused(images).clamp(0, 1).mul(255).round().to(torch.uint8).int()
        finally:
            rrdb_fused.F = F

    run(calibration, recording_rounder(amaxes), exact, exact)  # the fp32 network's conv inputs, per call
    amaxes[:] = [a * args.headroom for a in amaxes]
    header = f"{'variant':<26} {'PSNR dB':>8} {'max |diff|':>10} {'> 1 level':>10} {'> 2 levels':>10} {'s':>6}"
    print(header)
    print("-" * len(header))
    reference = None
    for name, (round_input, round_weight) in variants.items():
        round_output = exact if name == "fp32" else to_fp16
        start = time.perf_counter()
        out = run(x, round_input, round_weight, round_output)
        seconds = time.perf_counter() - start
        if reference is None:
            reference = out
        diff = (out - reference).abs()
        mse = diff.float().pow(2).mean().item()
        psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
        print(f"{name:<26} {psnr:8.1f} {diff.max().item():10d} {(diff > 1).float().mean().item():10.2%} "
              f"{(diff > 2).float().mean().item():10.2%} {seconds:6.1f}", flush=True)


if __name__ == "__main__":
    main()
