"""Does serving a held-out render reproduce what the eval stage scores? Framing, measured.

The eval stage feeds the model a render as training did (the raw frame, the render's own camera).
A user's image goes through serving instead: cut out, recentred to ``foreground_ratio`` of the frame
and given an assumed source camera. For each held-out asset, view 0 (the eval's input view) goes
through the serving path (``serve.infer.ImageToMesh``) three times: recentred with the model's own
framing (what its training views looked like, recorded in ``config.json`` by the train stage), recentred
with OpenLRM's (distance 2.0, focal 0.75, object at 80% of the frame), and as framed
(``serve.framing=keep``: no recentring, the model's mean camera). Each mesh, and the eval path's, is scored
against the ground truth with the eval stage's metrics, in the eval stage's frame. The table is
the mean over assets.

    python benchmarks/serve_framing.py configs/default.yaml            # after `lrm-dist run configs/default.yaml`
"""

from __future__ import annotations

import argparse
import io

import numpy as np


def _png(rgba: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    import torch

    from lrm_dist.config import load_config
    from lrm_dist.eval.stage import split_assets
    from lrm_dist.eval.metrics import evaluate_mesh, sample_ground_truth
    from lrm_dist.eval.reconstruct import prepare_input, reconstruct_meshes
    from lrm_dist.geometry.cameras import object_to_model_frame
    from lrm_dist.geometry.frame import canonical_to_eval
    from lrm_dist.geometry.mesh_io import load_mesh
    from lrm_dist.model.pretrained import from_pretrained
    from lrm_dist.serve.config import ServeConfig
    from lrm_dist.reconstruct import mesh_settings
    from lrm_dist.serve.infer import ImageToMesh
    from lrm_dist.serve.preprocess import prepare_image
    from lrm_dist.shards.reader import iter_render_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    layout = cfg.layout()
    render_dir, assets_manifest = layout.eval_render_dir, layout.eval_assets_manifest
    targets, _ = split_assets(render_dir, assets_manifest, cfg.eval.categories, cfg.shards.holdout_fraction)
    model_dir = cfg.eval.checkpoint or layout.model_dir
    model = from_pretrained(model_dir).eval()
    own = model.config
    resolution = mesh_settings(cfg.serve, cfg.eval, own).resolution  # what eval meshes at
    print(f"model {model_dir}: trained framing distance {own.source_distance}, focal {own.source_focal}, "
          f"foreground ratio {own.source_foreground_ratio}")
    variants = {
        "serve, model's framing": ServeConfig(mesh_resolution=resolution),
        "serve, OpenLRM's framing": ServeConfig(mesh_resolution=resolution, source_distance=2.0,
                                                source_focal=0.75, foreground_ratio=0.8),
        "serve, framing kept (serve.framing=keep)": ServeConfig(mesh_resolution=resolution, framing="keep"),
    }
    recons = {name: ImageToMesh(model, sc) for name, sc in variants.items()}
    scores: dict[str, list] = {"eval path (true camera, raw frame)": [], **{name: [] for name in variants}}
    for sample in iter_render_samples(render_dir):
        target = targets.get(sample["asset_id"])
        if target is None:
            continue
        mesh = load_mesh(target["mesh_path"])
        gt = sample_ground_truth(canonical_to_eval(np.asarray(mesh.vertices)), np.asarray(mesh.faces), cfg.eval.n_points)
        to_object = np.linalg.inv(object_to_model_frame(sample["c2w"], 0, cfg.train.sample.source_distance))
        prepared = prepare_input(sample["rgba"][0], sample["c2w"], sample["intrinsics"], model.source_size, 0,
                                 cfg.train.sample.source_distance)
        pred = reconstruct_meshes(model, [prepared], resolution, own.surface_level(), torch.device("cpu"))[0]
        scores["eval path (true camera, raw frame)"].append(evaluate_mesh(canonical_to_eval(pred.vertices), pred.faces, gt))
        for name, recon in recons.items():
            image = prepare_image(_png(sample["rgba"][0]), recon.source_size, recon.foreground_ratio, "never",
                                  framing=recon.cfg.framing)
            try:
                out = recon.reconstruct(image, sample["asset_id"]).mesh
                verts = np.asarray(out.vertices) @ to_object[:3, :3].T + to_object[:3, 3]
                scores[name].append(evaluate_mesh(canonical_to_eval(verts), np.asarray(out.faces), gt))
            except ValueError:  # no surface
                scores[name].append(evaluate_mesh(None, None, gt))
    print(f"\n{len(scores['eval path (true camera, raw frame)'])} held-out assets, class-agnostic means")
    print(f"{'path':<42} | {'IoU':>6} {'CD-L1':>6} {'NC':>6} {'F@.05':>6}")
    for name, rows in scores.items():
        iou, cd, nc, f = (float(np.mean(v)) for v in zip(*[(m.iou, m.chamfer_l1, m.normal_consistency, m.fscore[-1])
                                                            for m in rows]))
        print(f"{name:<42} | {iou:6.3f} {cd:6.3f} {nc:6.3f} {f:6.3f}")


if __name__ == "__main__":
    main()
