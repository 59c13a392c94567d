"""What a job costs: GPU-hours, CPU-hours and wall time per stage, from measured per-unit rates.

Every rate below is a measurement from this repository's benchmarks (the source is named next to
it); the job's shape comes from the arguments. What is NOT measured is said so in the output: the
multi-GPU training efficiency (issue 17's 2-GPU runs have not been made; the default is the goal,
0.9) and linear scaling of CPU rendering over cores and nodes (render actors share nothing).

    python benchmarks/cost_table.py                                  # 1,000 and 100,000 assets, 1/4/16 nodes
    python benchmarks/cost_table.py --assets 5000 --nodes 2 --train-efficiency 0.8
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Rates:
    """Measured per-unit costs (see each field's source)."""

    # docs/render.md "Performance notes": Cycles at 256 px, 64 spp, one Blender thread per actor.
    render_cpu_s_per_view: float = 1.1
    render_cpu_s_per_asset: float = 0.1  # scene set-up
    # docs/upscale.md: x4plus, Triton with fp8 dense blocks + compiled head + CUDA graphs (the GPU default), 128 px
    # input, one H200, end to end (uint8 in and out; 11.64 for the network alone).
    upscale_input_mp_per_gpu_s: float = 11.26
    # docs/train.md throughput table: OpenLRM-small, DeepSpeed ZeRO-1 autocast_bf16, batch 16, one H200.
    train_samples_per_gpu_s: float = 29.7
    # measured on one H200 (2026-11-30): one image -> triplanes 19 ms + 256^3 density grid 42 ms on one H200.
    eval_gpu_s_per_asset: float = 0.061
    # docs/eval.md: all metrics ~0.8-1.0 CPU-s per asset at 100k points, the ground truth's samples as much again.
    eval_cpu_s_per_asset: float = 2.0


def job_cost(assets: int, nodes: int, gpus_per_node: int, cpus_per_node: int, views: int, input_px: int,
             epochs: float, efficiency: float, holdout: float, rates: Rates) -> list[tuple[str, float, float, float]]:
    """[(stage, GPU-hours, CPU-hours, wall hours)] of one job on ``nodes`` identical nodes."""
    gpus, cpus = nodes * gpus_per_node, nodes * cpus_per_node
    render_cpu_s = assets * (views * rates.render_cpu_s_per_view + rates.render_cpu_s_per_asset)
    upscale_gpu_s = assets * views * input_px**2 / 1e6 / rates.upscale_input_mp_per_gpu_s
    train_gpu_s = assets * epochs / rates.train_samples_per_gpu_s / (efficiency if gpus > 1 else 1.0)
    held_out = assets * holdout
    eval_gpu_s, eval_cpu_s = held_out * rates.eval_gpu_s_per_asset, held_out * rates.eval_cpu_s_per_asset
    rows = [
        ("render (CPU, Blender)", 0.0, render_cpu_s / 3600, render_cpu_s / cpus / 3600),
        ("upscale (GPU, x4plus)", upscale_gpu_s / 3600, 0.0, upscale_gpu_s / gpus / 3600),
        ("train (GPU, DeepSpeed)", train_gpu_s / 3600, 0.0, train_gpu_s / gpus / 3600),
        ("eval (GPU inference + CPU metrics)", eval_gpu_s / 3600, eval_cpu_s / 3600,
         max(eval_gpu_s / gpus, eval_cpu_s / cpus) / 3600),
    ]
    return rows + [("total", *(sum(r[i] for r in rows) for i in (1, 2, 3)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--gpus-per-node", type=int, default=8, help="an 8 x H200 node")
    parser.add_argument("--cpus-per-node", type=int, default=128)
    parser.add_argument("--views", type=int, default=32, help="renders per asset (configs/furniture.yaml)")
    parser.add_argument("--input-px", type=int, default=128, help="render side fed to the upscaler")
    parser.add_argument("--epochs", type=float, default=100.0, help="training samples per asset")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of the assets evaluated")
    parser.add_argument("--train-efficiency", type=float, default=0.9,
                        help="multi-GPU scaling efficiency (NOT measured: issue 17's goal)")
    args = parser.parse_args()
    rates = Rates()
    print(f"rates (measured, one H200 / one CPU core): {rates}")
    print(f"assumed, not measured: training scales at {args.train_efficiency:.0%} beyond one GPU; rendering "
          "scales linearly over cores, at the rate measured at 256 px (an upper bound for smaller renders); stages run "
          "one after another; no start-up or transfer time")
    print(f"job: {args.views} views per asset, {args.input_px} px into the upscaler, {args.epochs:g} training samples "
          f"per asset, {args.holdout:.0%} held out and evaluated; nodes of {args.gpus_per_node} GPUs + {args.cpus_per_node} CPU cores\n")
    print(f"{'assets':>8} {'nodes':>5} | {'stage':<36} | {'GPU-h':>8} {'CPU-h':>9} {'wall h':>8}")
    for assets in args.assets:
        for nodes in args.nodes:
            for stage, gpu_h, cpu_h, wall_h in job_cost(assets, nodes, args.gpus_per_node, args.cpus_per_node,
                                                        args.views, args.input_px, args.epochs,
                                                        args.train_efficiency, args.holdout, rates):
                print(f"{assets:>8} {nodes:>5} | {stage:<36} | {gpu_h:8.2f} {cpu_h:9.1f} {wall_h:8.2f}")
            print()


if __name__ == "__main__":
    main()
