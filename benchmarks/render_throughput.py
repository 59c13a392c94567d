"""Render throughput: views/s of a plain in-process Blender loop vs. the Ray render stage with 1..N actors.

Renders the same procedural assets every time (built here, no downloads). The plain loop is
``BlenderRenderer.render`` + shard encoding in this process; each Ray row is the full stage
(``render_assets``: actors, retries bookkeeping, shard writer, manifest) on a local Ray with as many
CPUs as actors x ``--cpus-per-actor``. "overhead" compares the 1-actor Ray run with the plain loop;
"node-h/1k" is the node-hours 1000 assets take at that rate (times ``--price`` for money).
Needs Blender as a Python module (bpy, CPython 3.11); Cycles picks OptiX/CUDA when the host has a GPU.

    python benchmarks/render_throughput.py --assets 6 --views 4 --resolution 128 --samples 16 --actors 1 2
    python benchmarks/render_throughput.py --assets 40 --views 32 --resolution 512 --samples 64 --denoise \
        --actors 1 2 4 8 --cpus-per-actor 2 --gpus-per-actor 0.25 --price 2.5      # GPU node
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=int, default=6)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--denoise", action="store_true")
    p.add_argument("--engine", default="CYCLES", choices=["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"])
    p.add_argument("--cycles-device", default="auto", choices=["auto", "CPU", "CUDA", "OPTIX"])
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cpus-per-actor", type=float, default=1.0)
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    p.add_argument("--price", type=float, default=0.0, help="price of one node-hour (0: print hours only)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    return p.parse_args()


def _config(args, workdir: str, actors: int):
    from lrm_dist.config import PipelineConfig

    per_category = math.ceil(args.assets / 5)
    return PipelineConfig.model_validate({
        "workdir": workdir,
        "ray": {"num_cpus": max(1, math.ceil(actors * args.cpus_per_actor)),
                "num_gpus": None if args.gpus_per_actor else 0},
        "assets": {"sources": [{"kind": "procedural", "per_category": per_category}]},
        "render": {"views": args.views, "resolution": args.resolution, "samples": args.samples, "denoise": args.denoise,
                   "engine": args.engine, "cycles_device": args.cycles_device, "limit": args.assets,
                   "actors": {"count": actors, "num_cpus": args.cpus_per_actor, "num_gpus": args.gpus_per_actor}},
    })


def plain_loop(cfg) -> tuple[float, int]:
    """Seconds and views of rendering + encoding every asset in this process (after Blender is up)."""
    from lrm_dist.assets import read_asset_manifest
    from lrm_dist.render.blender_worker import BlenderRenderer, quiet_stdout
    from lrm_dist.render.settings import settings_hash
    from lrm_dist.shards.sample import encode_sample

    records = read_asset_manifest(f"{cfg.stage_dir('assets')}/assets.parquet", only_ok=True).to_pylist()
    records = records[: cfg.render.limit]
    renderer = BlenderRenderer(cfg.render, settings_hash(cfg.render), threads=max(1, round(cfg.render.actors.num_cpus)))
    t0 = time.perf_counter()
    views = 0
    with quiet_stdout():
        for record in records:
            encode_sample(renderer.render(record))
            views += cfg.render.views
    seconds = time.perf_counter() - t0
    renderer.close()
    return seconds, views


def main() -> int:
    args = _parse()
    t0 = time.perf_counter()
    try:
        import bpy  # noqa: F401
    except ImportError:
        print("render_throughput: bpy is not importable here; the render benchmark needs Blender as a module "
              "(pip install bpy==5.0.1 on CPython 3.11)", file=sys.stderr)
        return 2
    startup = time.perf_counter() - t0
    import ray

    from lrm_dist.assets import build_assets
    from lrm_dist.render import render_assets

    os.environ.setdefault("LRM_DIST_PROGRESS", "0")
    os.environ.setdefault("RAY_NODE_IP_ADDRESS", "127.0.0.1")
    workdir = args.workdir or tempfile.mkdtemp(prefix="render-bench-")
    cfg = _config(args, workdir, 1)
    build_assets(cfg)
    loop_s, loop_views = plain_loop(cfg)
    rows = [("plain loop", 1, loop_s, loop_views)]
    for n in args.actors:
        shutil.rmtree(cfg.stage_dir("render"), ignore_errors=True)
        cfg_n = _config(args, workdir, n)
        t0 = time.perf_counter()
        summary = render_assets(cfg_n)
        rows.append((f"ray {n} actor(s)", n, time.perf_counter() - t0, summary.views))
        ray.shutdown()
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{args.assets} assets x {args.views} views, {args.resolution}px, {args.engine} {args.samples} spp"
          f"{' +denoise' if args.denoise else ''}; importing bpy took {startup:.2f} s (not in the loop time)")
    print(f"{'run':<16}{'actors':>7}{'seconds':>9}{'views/s':>9}{'speed-up':>9}{'overhead':>9}{'node-h/1k':>10}"
          + (f"{'cost/1k':>9}" if args.price else ""))
    one_actor = next((r for r in rows if r[1] == 1 and r[0] != "plain loop"), None)
    for name, n, seconds, views in rows:
        rate = views / seconds if seconds else 0.0
        overhead = f"{(seconds / loop_s - 1) * 100:+.0f}%" if name != "plain loop" and n == 1 else ""
        hours = 1000 * args.views / rate / 3600 if rate else float("nan")
        line = f"{name:<16}{n:>7}{seconds:>9.2f}{rate:>9.2f}{loop_s / seconds:>9.2f}{overhead:>9}{hours:>10.3f}"
        print(line + (f"{hours * args.price:>9.2f}" if args.price else ""))
    if one_actor is None:
        print("(add --actors 1 to see the Ray overhead against the plain loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
