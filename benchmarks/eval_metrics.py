"""Per-asset cost of the evaluation metrics (CPU, numpy/scipy): inside test, sampling, Chamfer, all metrics.

Usage: python benchmarks/eval_metrics.py [--points 100000] [--subdivisions 3 5 6 7] [--repeat 1]
Prints one row per mesh size: faces, seconds of the 3-axis inside test at the IoU points, of surface
sampling, of the nearest-neighbour metrics, and of ``evaluate_mesh`` (prediction vs a prepared ground truth).
"""

from __future__ import annotations

import argparse
import time

import trimesh

from lrm_dist.geometry.inside import contains
from lrm_dist.eval.metrics import evaluate_mesh, sample_ground_truth, surface_metrics
from lrm_dist.geometry.sampling import sample_box, sample_surface


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--subdivisions", type=int, nargs="+", default=[3, 5, 6, 7], help="icosphere levels (faces 20*4^n)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    n = args.points
    box = sample_box(n, -0.55, 0.55, 0)
    print(f"points per set: {n}")
    print(f"{'faces':>9} {'inside_s':>9} {'sample_s':>9} {'nn_s':>7} {'evaluate_s':>10}")
    for sub in args.subdivisions:
        gt_mesh = trimesh.creation.icosphere(sub, radius=0.4)
        pred = gt_mesh.copy().apply_scale(0.95)
        gt = sample_ground_truth(gt_mesh.vertices, gt_mesh.faces, n)
        pts, nrm = sample_surface(pred.vertices, pred.faces, n, 1)
        t_in = _best(lambda: contains(pred.vertices, pred.faces, box), args.repeat)
        t_s = _best(lambda: sample_surface(pred.vertices, pred.faces, n, 1), args.repeat)
        t_nn = _best(lambda: surface_metrics(pts, nrm, gt.surface_points, gt.surface_normals, [0.01, 0.02, 0.05]), args.repeat)
        t_all = _best(lambda: evaluate_mesh(pred.vertices, pred.faces, gt), args.repeat)
        print(f"{len(pred.faces):>9} {t_in:>9.2f} {t_s:>9.2f} {t_nn:>7.2f} {t_all:>10.2f}")


if __name__ == "__main__":
    main()
