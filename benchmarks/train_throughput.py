"""Training-step throughput of the LRM: samples/s, step-time split and model FLOP utilisation.

One process, one device, the training step of ``lrm_dist.train`` (``step.forward_batch``, ``LossFn``,
torch AdamW with the run's parameter groups) on recipe batches built from SYNTHETIC views. Engines:
``deepspeed`` (the trainer's DeepSpeed engine and config builder: ZeRO-1, ``--precision`` as
``train.precision``) or ``torch`` (plain AdamW, fp32 weights under bf16 autocast, as OpenLRM
trains). The split times each part's forward + backward in isolation (encoder; camera embedding +
transformer + upsampler; rendering + loss) and the optimizer step; FLOPs are counted with
``torch.utils.flop_counter`` (matmuls, convolutions, attention) on one full step, MFU against
``--peak-tflops``.

    # CUDA (H100): small and base, OpenLRM's batch 16, 4 views, 64 px patches, 96 samples per ray
    python benchmarks/train_throughput.py --sizes small base                       # autocast_bf16
    python benchmarks/train_throughput.py --sizes small base --precision bf16      # bf16 weights
    python benchmarks/train_throughput.py --sizes small base --engine torch
    python benchmarks/train_throughput.py --sizes small --fresh --patch 32          # today's fresh model and crops
    # a config's whole recipe (model, batch, crops and loss terms; depth, occupancy and layer targets from
    # synthetic views), with the 25 CUDA ops that take most of a profiled step
    python benchmarks/train_throughput.py --recipe configs/quality.yaml --profile
    # the field sampling's reference (torch's grid_sample) against the default row kernels
    python benchmarks/train_throughput.py --recipe configs/quality.yaml --field-sampling grid_sample
    # the encoder and transformer blocks eager (compiled by default on CUDA: train.compile_blocks)
    python benchmarks/train_throughput.py --sizes small --no-compile-blocks
    # CPU smoke
    python benchmarks/train_throughput.py --sizes tiny --batch 2 --patch 16 --steps 3
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import nullcontext

import numpy as np
import torch

from lrm_dist.model.config import SIZES, ModelConfig
from lrm_dist.model.lrm import LRM
from lrm_dist.train.config import LossConfig, SampleConfig, TrainConfig
from lrm_dist.train.deepspeed_config import input_dtype
from lrm_dist.train.deepspeed_ops import use_extensions_dir
from lrm_dist.train.losses import LossFn
from lrm_dist.train.optim import build_optimizer
from lrm_dist.train.sample import build_sample, collate
from lrm_dist.train.step import forward_batch, optimizer_step, render_cameras, to_device
from lrm_dist.train.synthetic import synthetic_asset


def make_batch(batch: int, views: int, patch: int, source: int, device: torch.device,
               cfg: SampleConfig | None = None) -> dict[str, torch.Tensor]:
    """A recipe batch from SYNTHETIC 256 px views (real cameras, so rays cross the object box); with a
    ``cfg`` (``--recipe``), also depth, normal and a random 64^3 occupancy grid, so every loss term runs."""
    recipe = cfg is not None
    cfg = cfg or SampleConfig(supervision_views=views, render_res_low=max(patch, 192), render_res_high=max(patch, 192),
                              patch_size=patch)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(batch):
        a = synthetic_asset(f"bench-{i}", cfg.supervision_views, 256, seed=i)
        extra = {"depth": a["depth"], "normal": a["normal"], "occupancy": rng.random((64, 64, 64)) < 0.3} if recipe else {}
        samples.append(build_sample(a["rgba"], a["c2w"], a["intrinsics"], cfg, source, rng, **extra))
    return to_device(collate(samples), device)


def print_profile(full_step, steps: int, device: torch.device, top: int = 25) -> None:
    """The ``top`` ops by self device time over ``steps`` full steps (torch.profiler), as a table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            full_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=top, max_name_column_width=60))


class Timer:
    """Wall time of a block, synchronising CUDA on both ends."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn, repeat: int) -> float:
        fn()  # warm-up
        if self.cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        if self.cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / repeat


def _deepspeed_engine(model, optimizer, precision: str, batch: int, zero_stage: int):
    """The trainer's DeepSpeed engine (its config builder) on a one-process group, and the clip the loop
    applies itself (``optimizer_step``; 0 where DeepSpeed clips)."""
    import deepspeed
    import torch.distributed as dist

    from lrm_dist.train.deepspeed_config import build_deepspeed_config, loop_clips_gradients

    if not dist.is_initialized():
        for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533", "RANK": "0", "LOCAL_RANK": "0",
                           "WORLD_SIZE": "1"}.items():
            os.environ.setdefault(key, value)
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    cfg = TrainConfig(micro_batch_size=batch, zero_stage=zero_stage, precision=precision)
    config = build_deepspeed_config(cfg, world_size=1, use_gpu=torch.cuda.is_available())
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine, (cfg.grad_clip if loop_clips_gradients(cfg, torch.cuda.is_available()) else 0.0)


def optimizer_time(runner, optimizer, model, batch, dtype, step_autocast, loss_of, args, device, points: bool) -> float:
    """Seconds of the optimizer step alone (clipping included), after an untimed forward + backward."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    total = 0.0
    for i in range(args.steps + 1):
        with step_autocast:
            loss = loss_of(forward_batch(runner, batch, dtype, points=points))
        if args.engine == "deepspeed":
            runner.backward(loss)
        else:
            loss.backward()
        sync()
        t = time.perf_counter()
        if args.engine == "deepspeed":
            optimizer_step(runner, args.loop_clip)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
        total += (time.perf_counter() - t) if i else 0.0  # first one is warm-up
    return total / args.steps


def bench(size: str, args, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    update = {} if args.fresh or args.recipe else {"image_lift": args.image_lift}
    if args.samples:
        update["rendering_samples_per_ray"] = args.samples
    # --fresh: what a fresh model of this size is by default (image lift, refiner, lift encoder), not OpenLRM's
    model_cfg = args.recipe.model if args.recipe else ModelConfig(size=size)
    arch = (model_cfg.arch() if args.fresh or args.recipe else SIZES[size]).model_copy(update=update)
    model = LRM(arch).to(device).train()
    if args.checkpointing:
        model.set_gradient_checkpointing(True)
    if args.compile_blocks:
        model.compile_blocks()
    if args.channels_last and model.lift is not None:
        for conv in (m for m in model.lift.modules() if isinstance(m, torch.nn.Conv2d)):  # cuDNN then runs them NHWC
            conv.to(memory_format=torch.channels_last)
    sampling = TrainConfig(field_sampling=args.field_sampling or "auto")
    model.synthesizer.exact_sampling = sampling.exact_field_sampling(device.type == "cuda")
    precision = args.precision or ("autocast_bf16" if device.type == "cuda" else "fp32")
    sample_cfg = args.recipe.train.sample if args.recipe else None
    batch = make_batch(args.batch, args.views, args.patch, model.source_size, device, sample_cfg)
    optimizer = build_optimizer(model, 4e-4, 0.05, (0.9, 0.95), 1e-8, fused=device.type == "cuda")
    loss_cfg = args.recipe.train.loss.model_copy(update={"perceptual": 0.0}) if args.recipe else LossConfig(perceptual=0.0, mask=0.5)
    loss_fn = LossFn(loss_cfg, device)
    points = loss_fn.needs_points  # the occupancy term's point queries ride in every full step
    # Under DeepSpeed, autocast_bf16 is the engine's own; for the isolated parts (which bypass the
    # engine) and for the plain torch engine it is applied here.
    use_autocast = precision in ("bf16", "autocast_bf16") if args.engine == "torch" else precision == "autocast_bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_autocast else nullcontext()
    if args.engine == "deepspeed":
        runner, args.loop_clip = _deepspeed_engine(model, optimizer, precision, args.batch, args.zero_stage)
        dtype = input_dtype(precision)
        step_autocast = nullcontext()
    else:
        runner, dtype, step_autocast = model, torch.float32, autocast

    def loss_of(out):
        total, _ = loss_fn(out, batch)
        return total

    def full_step():
        with step_autocast:
            loss = loss_of(forward_batch(runner, batch, dtype, points=points))
        if args.engine == "deepspeed":
            runner.backward(loss)
            optimizer_step(runner, args.loop_clip)
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    timer = Timer(device)
    step_s = timer(full_step, args.steps)
    if args.profile:
        print(f"\n{size}: the ops of {args.profile} profiled full steps, by self device time")
        print_profile(full_step, args.profile, device)

    # Parts, each forward + backward alone (inputs detached); the module is the engine's (bf16 under DeepSpeed).
    m = runner.module if args.engine == "deepspeed" else model
    image = batch["source_image"].to(dtype)
    cam = batch["source_camera"].to(dtype)
    with torch.no_grad(), autocast:
        tokens = m.encoder(image)
        planes = m.forward_planes(image, cam)

    def encoder_part():
        with autocast:
            out = m.encoder(image)
        out.float().square().mean().backward()

    def transformer_part():
        n, low = image.shape[0], m.config.triplane_low_res
        with autocast:
            mod = m.camera_embedder(cam.to(tokens.dtype))
            x = m.transformer(m.pos_embed.expand(n, -1, -1), tokens, mod)
            x = x.view(n, 3, low, low, -1).permute(0, 1, 4, 2, 3).reshape(n * 3, -1, low, low)
            out = m.upsampler(x)
        out.float().square().mean().backward()

    p = args.patch
    cams = render_cameras(batch["render_c2w"].float(), batch["render_intrinsics"].float())
    leaf = planes.detach().requires_grad_(True)

    def render_part():
        from lrm_dist.model.lrm import split_render_cameras

        c2w, intr = split_render_cameras(cams)
        with autocast:
            out = m.render(leaf, c2w, intr, p, p, bg_color=batch["render_bg"].float())
            loss = loss_of({**out, "planes": leaf})
        loss.backward()

    parts = {name: timer(fn, args.steps) for name, fn in
             (("encoder", encoder_part), ("transformer", transformer_part), ("rendering", render_part))}
    parts["optimizer"] = optimizer_time(runner, optimizer, model, batch, dtype, step_autocast, loss_of, args, device, points)
    model.zero_grad(set_to_none=True)

    from torch.utils.flop_counter import FlopCounterMode

    def count(fn) -> float:
        with FlopCounterMode(display=False) as fc:
            fn()
        return float(fc.get_total_flops())

    step_flops = count(full_step)
    transformer_flops = count(transformer_part)
    model.zero_grad(set_to_none=True)
    n_params = sum(q.numel() for q in model.parameters())
    return {
        "params_M": n_params / 1e6, "step_ms": step_s * 1e3, "samples_s": args.batch / step_s,
        **{f"{k}_ms": v * 1e3 for k, v in parts.items()},
        "tflop_step": step_flops / 1e12, "tflops": step_flops / step_s / 1e12,
        "transformer_tflops": transformer_flops / parts["transformer"] / 1e12,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan"),
    }


def main() -> None:
    # DeepSpeed's JIT ops (the CPU comm op): the training stage's cache unless TORCH_EXTENSIONS_DIR names another
    use_extensions_dir(os.environ.get("TORCH_EXTENSIONS_DIR"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--sizes", nargs="+", default=["small", "base"] if cuda else ["tiny"])
    parser.add_argument("--batch", type=int, default=16 if cuda else 2)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--patch", type=int, default=64 if cuda else 16)
    parser.add_argument("--samples", type=int, default=None, help="samples per ray (default: the size's own)")
    parser.add_argument("--steps", type=int, default=10 if cuda else 3)
    parser.add_argument("--engine", choices=["deepspeed", "torch"], default="deepspeed")
    parser.add_argument("--precision", choices=["bf16", "autocast_bf16", "fp32"], default=None,
                        help="bf16 weights, fp32 weights under bf16 autocast, fp32 (default: the trainer's, autocast_bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--zero-stage", type=int, default=1)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing of blocks")
    parser.add_argument("--compile-blocks", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the model's blocks (default: as train.compile_blocks resolves on this device and ZeRO stage)")
    parser.add_argument("--field-sampling", choices=["auto", "rows", "grid_sample"], default=None,
                        help="the field's feature sampling, as train.field_sampling (default: the recipe's, else auto: "
                        "rows on CUDA, grid_sample on CPU)")
    parser.add_argument("--image-lift", action="store_true", help="with the image lift (model/lift.py)")
    parser.add_argument("--channels-last", action="store_true",
                        help="the image lift's 2D convolutions in channels-last (NHWC) memory format")
    parser.add_argument("--fresh", action="store_true",
                        help="the default fresh model of each size (model.ModelConfig: lift, refiner, lift encoder)")
    parser.add_argument("--recipe", metavar="CONFIG",
                        help="a pipeline config whose model, train.micro_batch_size, train.sample and train.loss "
                        "(the perceptual term off) replace --sizes/--batch/--views/--patch")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of the --recipe config")
    parser.add_argument("--profile", type=int, nargs="?", const=3, default=0, metavar="STEPS",
                        help="also print the ops that take most of STEPS (3) profiled full steps")
    parser.add_argument("--peak-tflops", type=float, default=790.0 if cuda else 0.0,
                        help="MFU denominator (H100: 790 measured bf16 matmul peak, 989 spec)")
    args = parser.parse_args()
    if args.recipe:
        from lrm_dist.config import load_config

        config_path, args.recipe = args.recipe, load_config(args.recipe, args.overrides)
        args.sizes, args.batch = [args.recipe.model.size], args.recipe.train.micro_batch_size
        args.views, args.patch = args.recipe.train.sample.supervision_views, args.recipe.train.sample.patch_size
        args.field_sampling = args.field_sampling or args.recipe.train.field_sampling
        print(f"recipe {config_path} {' '.join(args.overrides)}: loss {args.recipe.train.loss.model_dump()}")
    device = torch.device("cuda" if cuda else "cpu")
    if args.compile_blocks is None:
        train = args.recipe.train if args.recipe else TrainConfig()
        args.compile_blocks = train.model_copy(update={"zero_stage": args.zero_stage}).compiles_blocks(cuda)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rows = [(size, bench(size, args, device)) for size in args.sizes]
    name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    precision = args.precision or ("autocast_bf16" if cuda else "fp32")
    print(f"\n{name}, torch {torch.__version__}, engine {args.engine} (ZeRO-{args.zero_stage}), {precision}, "
          f"batch {args.batch}, {args.views} views, "
          f"{args.patch}px patches, checkpointing {args.checkpointing}, compiled blocks {args.compile_blocks}, field sampling {args.field_sampling or 'auto'}"
          f"{', lift channels-last' if args.channels_last else ''}")
    cols = ["params_M", "samples_s", "step_ms", "encoder_ms", "transformer_ms", "rendering_ms", "optimizer_ms",
            "tflop_step", "tflops", "transformer_tflops", "peak_mem_gb"]
    head = "| size | " + " | ".join(cols) + (" | MFU | transformer MFU |" if args.peak_tflops else " |")
    print(head + "\n|" + "---|" * (head.count("|") - 1))
    for size, r in rows:
        cells = [f"{r[c]:.3g}" if abs(r[c]) < 100 else f"{r[c]:.0f}" for c in cols]
        mfu = f" | {100 * r['tflops'] / args.peak_tflops:.1f}% | {100 * r['transformer_tflops'] / args.peak_tflops:.1f}% |" if args.peak_tflops else " |"
        print(f"| {size} | " + " | ".join(cells) + mfu)


if __name__ == "__main__":
    main()
