"""Rescore an eval's saved meshes: the eval's metrics plus where the occupied volume is wrong, as saved and smoothed.

Rescores every ``meshes/<asset_id>.glb`` of an eval output folder (``eval.save_meshes``) against its ground
truth with the eval stage's own metrics and settings (points, padding, seed, F-score thresholds from the
config), as saved and after Taubin or Laplacian smoothing, and prints class means per variant: IoU,
Chamfer-L1, NC, F-scores, and at the IoU points the predicted volume over the true one, the share of
predicted-inside points truly inside (precision) and of truly-inside points predicted inside (recall).
The first row reproduces the eval's own numbers (the check that the rescoring is the eval's); ``--per-category``
also prints the saved meshes' rows per category. CPU only.

    python benchmarks/rescore_meshes.py configs/quality.yaml /tmp/q2/eval/G8/checkpoint_00002100 --set workdir=/tmp/q2
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

from lrm_dist.config import load_config
from lrm_dist.eval.metrics import evaluate_mesh, sample_ground_truth
from lrm_dist.eval.stage import resolved_settings
from lrm_dist.geometry.frame import Y_UP_TO_Z_UP, canonical_to_eval
from lrm_dist.geometry.inside import contains
from lrm_dist.layout import RunLayout, workdir_of_assets_manifest

VARIANTS = [("as saved", None, 0), ("Taubin", "taubin", 5), ("Taubin", "taubin", 10), ("Taubin", "taubin", 20),
            ("Laplacian, volume kept", "laplacian", 3)]


def _smoothed(vertices: np.ndarray, faces: np.ndarray, kind: str | None, iterations: int) -> np.ndarray:
    mesh = trimesh.Trimesh(vertices.copy(), faces, process=False)
    if kind == "taubin":
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=iterations)
    elif kind == "laplacian":
        trimesh.smoothing.filter_laplacian(mesh, lamb=0.5, iterations=iterations, volume_constraint=True)
    return np.asarray(mesh.vertices)


def score_asset(row: dict, eval_dir: str, gt_path: str, settings: dict) -> list[dict]:
    """One asset's metrics per variant (its saved GLB is y-up; the metrics run in the eval frame)."""
    pred = trimesh.load(Path(eval_dir) / str(row["mesh_file"]), force="mesh", process=False)
    vertices = np.asarray(pred.vertices) @ Y_UP_TO_Z_UP[:3, :3].T
    faces = np.asarray(pred.faces)
    gt_mesh = trimesh.load(gt_path, force="mesh", process=False)
    gt = sample_ground_truth(canonical_to_eval(gt_mesh.vertices), gt_mesh.faces, settings["n_points"],
                             settings["padding"], settings["seed"])
    out = []
    for label, kind, iterations in VARIANTS:
        smoothed = canonical_to_eval(_smoothed(vertices, faces, kind, iterations))
        m = evaluate_mesh(smoothed, faces, gt, settings["thresholds"], settings["seed"])
        inside, truth = contains(smoothed, faces, gt.box_points), gt.occupancy
        both = np.count_nonzero(inside & truth)
        out.append({"variant": f"{label}{f' x{iterations}' if iterations else ''}", "category": row["category"],
                    "iou": m.iou, "chamfer_l1": m.chamfer_l1, "nc": m.normal_consistency,
                    **{f"F@{t:g}": f for t, f in zip(m.thresholds, m.fscore)},
                    "volume_ratio": np.count_nonzero(inside) / max(np.count_nonzero(truth), 1),
                    "precision": both / max(np.count_nonzero(inside), 1), "recall": both / max(np.count_nonzero(truth), 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the pipeline config the eval ran with")
    parser.add_argument("eval_dir", help="an eval output folder holding eval.parquet and meshes/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-category", action="store_true", help="also the saved meshes' rows per category")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    settings = resolved_settings(cfg)
    manifest = RunLayout.from_config(cfg).eval_assets_manifest
    root = Path(workdir_of_assets_manifest(manifest))
    gt_paths = dict(pd.read_parquet(manifest, columns=["asset_id", "mesh_path"]).itertuples(index=False))
    rows = pd.read_parquet(Path(args.eval_dir) / "eval.parquet")
    rows = rows[rows["mesh_file"].notna()].to_dict("records")
    own = pd.DataFrame(rows).groupby("category")[["iou", "normal_consistency"]].mean().mean()
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = [pool.submit(score_asset, r, args.eval_dir, str(root / gt_paths[r["asset_id"]]), settings) for r in rows]
        scores = pd.DataFrame([s for job in jobs for s in job.result()])
    table = scores.groupby(["variant", "category"], sort=False).mean().groupby("variant", sort=False).mean()
    print(f"{len(rows)} meshes of {args.eval_dir}; the eval's own class means: IoU {own['iou']:.3f}, "
          f"NC {own['normal_consistency']:.3f}\n")
    _print_table(table, "variant")
    if args.per_category:
        print()
        _print_table(scores[scores["variant"] == scores["variant"].iloc[0]].drop(columns="variant")
                     .groupby("category").mean(), "category (as saved)")


def _print_table(table: pd.DataFrame, label: str) -> None:
    print(f"| {label} | " + " | ".join(table.columns) + " |\n|---|" + "---|" * len(table.columns))
    for name, values in table.iterrows():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
