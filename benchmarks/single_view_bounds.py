"""What one view can give: reference predictors built from the ground truth, scored like the eval stage scores a model.

Usage: python benchmarks/single_view_bounds.py CONFIG [--set KEY=VALUE ...] [--per-category 4] [--input-view 0]
       [--model FOLDER] [--label-resolutions 96 192]

For held-out assets of a rendered workdir (shards plus ground-truth meshes), the input view's camera and
silhouette, and its depth map, build occupancy on a grid over [-1, 1]^3, meshed at 0.5 and scored with
the eval stage's metrics (``eval.metrics``, the eval's point count and seed):

* ``hull``: every point that projects onto the silhouette (the visual hull of one view).
* ``hull+slab t``: the hull within t of the object's centre depth (a constant guess of the depth extent).
* ``front+t``: from the rendered depth of each pixel to t behind it (the visible surface, exact, with a
  constant thickness): what a perfect depth map of the input view gives with no idea of what is hidden.
* ``interval``: from the first to the last ground-truth surface along each pixel's ray: one interval per
  ray, exact (what a model would reach if it knew the hidden back of every pixel).
* ``exact``: the ground-truth occupancy itself on the same grid (what the grid and the mesher lose).
* ``labels R^3`` (with ``--label-resolutions R ...``): IoU only, of training's occupancy labels at the eval's own
  points (each labelled by the R^3 grid cell it falls in, as ``geometry.occupancy.lookup`` labels training points):
  the ceiling the labels of a ``render.occupancy_resolution`` of R put on a model trained on them.
* ``model layers`` (with ``--model FOLDER``): ``interval`` with a trained model's own predicted first and last
  surface (its image lift's depth layers) instead of the truth: how much of the shape its layers hold.
* ``model field`` (with ``--model FOLDER``): the same model's own mesh, made and scored as the eval stage makes
  and scores it (``eval.reconstruct``, the eval's mesh settings), on the same assets as the other rows.
* ``field within layers m`` / ``field or layers m`` (with ``--model``): that mesh's density grid kept only
  between the model's own layers (widened by m each way), or with the interval filled too, before meshing.
* ``field silhouette (true)`` / ``field interval (true)`` / ``field behind front (true)`` / ``field before back
  (true)`` (with ``--model``): that grid kept only on the input view's true silhouette, between its true first and
  last surface per pixel, behind the first, before the last: how much the field loses outside the silhouette, and
  along the input rays in front of and behind the object.

A trained model's held-out class mean sits between these rows; docs/train.md reads it against them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lrm_dist.config import load_config
from lrm_dist.eval.metrics import evaluate_mesh, sample_ground_truth, volumetric_iou
from lrm_dist.geometry.frame import CANONICAL_HALF_EXTENT, canonical_to_eval
from lrm_dist.geometry.inside import contains
from lrm_dist.geometry.occupancy import cell_centres, lookup, occupancy_grid
from lrm_dist.reconstruct.extract import NoSurface, marching_cubes
from lrm_dist.shards.reader import iter_render_samples
from lrm_dist.shards.split import is_heldout

GRID = 96
MESH_GRID = 128
SLABS = (0.3, 0.5, 0.8)
THICKNESSES = (0.1, 0.3, 1.0)
# the model's field combined with its own layer interval (how, margin in model-frame units)
COMBINED = (("within", 0.02), ("within", 0.08), ("or", 0.0))


def _project(points: np.ndarray, c2w: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel column, row (float) and planar depth of points seen by an OpenGL camera with pixel intrinsics."""
    local = (points - c2w[:3, 3]) @ c2w[:3, :3]
    depth = -local[:, 2]
    return k[2] + k[0] * local[:, 0] / depth, k[3] - k[1] * local[:, 1] / depth, depth


def view_truth(sample: dict, view: int, inside: np.ndarray, points: np.ndarray) -> Callable[[np.ndarray], tuple]:
    """The input view's ground truth as a test of any points: ``at(query)`` -> (tests, depth, col, row) for
    object-frame points [Q, 3]: ``tests`` says whether each is on the silhouette, between the first and last
    ground-truth surface of its pixel, behind the first, before the last (``inside``: the ground-truth occupancy of
    ``points``, whose inside ones give those surfaces); then their planar depth and pixel column and row."""
    c2w, k = sample["c2w"][view].astype(np.float64), sample["intrinsics"][view].astype(np.float64)
    w, h = int(k[4]), int(k[5])
    alpha = sample["rgba"][view][..., 3] > 127

    def pixels(query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        u, v, depth = _project(query, c2w, k)
        on_image = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (depth > 0)
        col, row = np.clip(u.astype(int), 0, w - 1), np.clip(v.astype(int), 0, h - 1)
        return on_image, col, row, row * w + col, depth

    _, _, _, pixel, depth = pixels(points)
    first, last = np.full(w * h, np.inf), np.full(w * h, -np.inf)
    np.minimum.at(first, pixel[inside], depth[inside])
    np.maximum.at(last, pixel[inside], depth[inside])

    def at(query: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        on_image, col, row, pixel, depth = pixels(query)
        hull = on_image & alpha[row, col]
        behind_front, before_back = hull & (depth >= first[pixel] - 0.01), hull & (depth <= last[pixel] + 0.01)
        tests = {"silhouette": hull, "interval": behind_front & before_back, "behind front": behind_front,
                 "before back": before_back}
        return tests, depth, col, row

    return at


def predictors(sample: dict, view: int, truth: Callable[[np.ndarray], tuple], inside: np.ndarray,
               points: np.ndarray) -> dict[str, np.ndarray]:
    """Each reference predictor's occupancy at ``points`` (object frame) from view ``view`` of ``sample``
    (``truth``: that view's ``view_truth`` over the same points, whose ground-truth occupancy is ``inside``)."""
    tests, depth, col, row = truth(points)
    hull = tests["silhouette"]
    k = sample["intrinsics"][view]
    dmap = sample["depth"][view]
    seen = dmap[row * dmap.shape[0] // int(k[5]), col * dmap.shape[1] // int(k[4])]  # the depth map may be smaller
    centre = float(np.linalg.norm(sample["c2w"][view][:3, 3]))
    out = {"hull": hull}
    out.update({f"hull+slab {t}": hull & (np.abs(depth - centre) < t) for t in SLABS})
    out.update({f"front+{t}": hull & (seen > 0) & (depth >= seen - 0.01) & (depth <= seen + t) for t in THICKNESSES})
    out["interval"] = tests["interval"]
    out["exact"] = inside
    return out


def _prepared(model, sample: dict, view: int, cfg):
    """View ``view`` of ``sample`` prepared as the eval stage prepares a model's input."""
    from lrm_dist.eval.reconstruct import prepare_input

    distance = model.config.canonical_distance
    distance = cfg.train.sample.source_distance if distance is None else distance
    return prepare_input(sample["rgba"][view], sample["c2w"], sample["intrinsics"], model.source_size, view,
                         distance, model.config.source_frame)


def _layer_depths(recon, prepared, points_model: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Model-frame points [P, 3] against the model's predicted depth layers of the prepared input: each point's
    depth, the front and back layer at its projection, and whether it projects onto the image (device tensors)."""
    from lrm_dist.model.lift import project_points

    image = torch.from_numpy(prepared.image)[None].to(recon.device)
    camera = torch.from_numpy(prepared.camera)[None].to(recon.device)
    with recon.autocast():
        _, layers = recon.model.lift(image, camera)
    coords, depth = project_points(points_model[None].to(recon.device), camera)
    front, back = F.grid_sample(layers.float(), coords[:, None], mode="bilinear", padding_mode="border",
                                align_corners=False)[0, :, 0]
    on_image = (coords[0].abs() <= 1).all(-1) & (depth[0] > 0)
    return depth[0], front, back, on_image


def _between(depths: tuple[torch.Tensor, ...], margin: float) -> torch.Tensor:
    """Whether each point of ``_layer_depths`` lies between its front and back layer, widened by ``margin``."""
    depth, front, back, on_image = depths
    return on_image & (depth >= front - margin) & (depth <= back + margin)


def model_layers(recon, sample: dict, view: int, points: np.ndarray, cfg) -> np.ndarray:
    """``interval`` with the model's predicted depth layers: points (object frame) between its front and back."""
    prepared = _prepared(recon.model, sample, view, cfg)
    to_model = np.linalg.inv(prepared.model_to_object)
    in_model = torch.from_numpy((points @ to_model[:3, :3].T + to_model[:3, 3]).astype(np.float32))
    return _between(_layer_depths(recon, prepared, in_model), 0.0).cpu().numpy()


def model_field_combined(recon, sample: dict, view: int, cfg, gt, truth) -> dict[str, tuple[float, float, float, float]]:
    """The model's density grid combined with a mask before meshing, each meshed and scored as ``model field`` is:
    its own layer interval for each of ``COMBINED`` (``within`` keeps the field only inside the interval, widened by
    the margin; ``or`` fills the interval too), and the input view's ground truth (``truth``: ``view_truth``'s
    test), the field kept only where that test holds (on the true silhouette, between the true first and last
    surface, behind the first, before the last): what the field loses outside the silhouette, and in front of and
    behind the object along the input rays.
    Row name -> (IoU, Chamfer-L1, NC, F@0.05)."""
    from lrm_dist.reconstruct.extract import MESHERS, density_grid

    prepared = _prepared(recon.model, sample, view, cfg)
    res, level = recon.settings.resolution, recon.threshold
    planes = recon.planes(prepared.image[None], prepared.camera[None])[0]
    with recon.autocast():
        grid = density_grid(recon.model.synthesizer, planes, res, recon.settings.grid_chunk)
    axis = torch.linspace(-1.0, 1.0, res)
    grid_points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
    depths = _layer_depths(recon, prepared, grid_points)
    m = prepared.model_to_object
    tests = truth(grid_points.double().numpy() @ m[:3, :3].T + m[:3, 3])[0]
    masks = {f"field {how} layers {margin}": (how, _between(depths, margin)) for how, margin in COMBINED}
    masks.update({f"field {name} (true)": ("within", torch.from_numpy(test)) for name, test in tests.items()})
    out = {}
    for name, (how, inside) in masks.items():
        inside = inside.view(res, res, res).to(grid.device)
        if how == "within":
            combined = torch.where(inside, grid, torch.zeros_like(grid))
        else:
            combined = torch.where(inside, grid.clamp(min=level + 1.0), grid)
        try:
            verts, faces = MESHERS[recon.settings.mesher](combined, level)
        except NoSurface:
            out[name] = (0.0, float(np.sqrt(3.0)), 0.0, 0.0)
            continue
        verts = (verts.astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
        metrics = evaluate_mesh(canonical_to_eval(verts), faces, gt)
        out[name] = (metrics.iou, metrics.chamfer_l1, metrics.normal_consistency, metrics.fscore[-1])
    return out


def model_field(recon, sample: dict, view: int, cfg, gt) -> tuple[float, float, float, float]:
    """The model's own mesh of view ``view`` (the eval stage's reconstruction and metrics), scored against ``gt``."""
    from lrm_dist.eval.reconstruct import object_meshes

    mesh = object_meshes(recon, [_prepared(recon.model, sample, view, cfg)])[0]
    m = evaluate_mesh(canonical_to_eval(mesh.vertices), mesh.faces, gt)
    return m.iou, m.chamfer_l1, m.normal_consistency, m.fscore[-1]


def score(occupancy: np.ndarray, gt) -> tuple[float, float, float, float]:
    """IoU, Chamfer-L1, NC, F@0.05 of the mesh of a cell-centre occupancy grid (GRID^3, x-major)."""
    grid = torch.from_numpy(occupancy.reshape(GRID, GRID, GRID).astype(np.float32))[None, None]
    field = F.interpolate(grid, size=(MESH_GRID,) * 3, mode="trilinear", align_corners=False)[0, 0]
    try:
        verts, faces = marching_cubes(field, 0.5)
    except NoSurface:
        return 0.0, float(np.sqrt(3.0)), 0.0, 0.0
    m = evaluate_mesh(canonical_to_eval(verts), faces, gt)
    return m.iou, m.chamfer_l1, m.normal_consistency, m.fscore[-1]


def label_iou(vertices: np.ndarray, faces: np.ndarray, resolution: int, gt) -> tuple[float, float, float, float]:
    """IoU of the R^3 grid's cell labels at the eval's IoU points against their exact labels (other metrics: nan)."""
    grid = occupancy_grid(vertices, faces, resolution)
    labels = lookup(grid, gt.box_points * (2 * CANONICAL_HALF_EXTENT))  # eval frame -> canonical frame
    return volumetric_iou(labels, gt.occupancy), float("nan"), float("nan"), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--per-category", type=int, default=4, help="Held-out assets per category.")
    parser.add_argument("--input-view", type=int, default=None,
                        help="View fed to the predictors (default: eval.input_view).")
    parser.add_argument("--model", default=None,
                        help="A trained model folder with an image lift: also score its own depth layers.")
    parser.add_argument("--label-resolutions", type=int, nargs="*", default=[], metavar="R",
                        help="Also the IoU ceiling of occupancy labels from an R^3 grid (render.occupancy_resolution).")
    args = parser.parse_args()
    import trimesh

    from lrm_dist.assets.manifest import read_asset_manifest

    cfg = load_config(args.config, args.overrides)
    layout = cfg.layout()
    recon = None
    if args.model:
        from lrm_dist.model.pretrained import from_pretrained
        from lrm_dist.reconstruct import Reconstructor, mesh_settings

        model = from_pretrained(args.model)
        if model.lift is None:
            raise SystemExit(f"{args.model}: the model has no image lift, so no depth layers to score")
        recon = Reconstructor(model, mesh_settings(cfg.serve, cfg.eval, model.config), "auto", cfg.eval.actors.precision,
                              setting="eval.actors")
    view = cfg.eval.input_view if args.input_view is None else args.input_view
    assets = read_asset_manifest(layout.eval_assets_manifest, only_ok=True).to_pylist()
    meshes = {r["asset_id"]: r["mesh_path"] for r in assets}
    points = cell_centres(GRID).reshape(-1, 3)
    counts: dict[str, int] = {}
    rows: dict[str, dict[str, list]] = {}
    for sample in iter_render_samples(layout.eval_render_dir):
        asset, category = sample["asset_id"], sample["category"]
        if not is_heldout(asset, cfg.shards.holdout_fraction) or counts.get(category, 0) >= args.per_category:
            continue
        if sample["depth"] is None or asset not in meshes:
            continue
        counts[category] = counts.get(category, 0) + 1
        mesh = trimesh.load(meshes[asset], process=False)
        v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        gt = sample_ground_truth(canonical_to_eval(v), f, cfg.eval.n_points, cfg.eval.iou_padding, cfg.eval.seed)
        inside = contains(v, f, points)
        truth = view_truth(sample, view, inside, points)
        found = predictors(sample, view, truth, inside, points)
        if recon is not None:
            found["model layers"] = model_layers(recon, sample, view, points, cfg)
        for name, occupancy in found.items():
            rows.setdefault(name, {}).setdefault(category, []).append(score(occupancy, gt))
        for resolution in args.label_resolutions:
            rows.setdefault(f"labels {resolution}^3", {}).setdefault(category, []).append(label_iou(v, f, resolution, gt))
        if recon is not None:
            rows.setdefault("model field", {}).setdefault(category, []).append(model_field(recon, sample, view, cfg, gt))
            for name, scores in model_field_combined(recon, sample, view, cfg, gt, truth).items():
                rows.setdefault(name, {}).setdefault(category, []).append(scores)
        print(f"scored {asset}", flush=True)
    if not rows:
        raise SystemExit(f"no held-out sample with depth and a ground-truth mesh under {layout.eval_render_dir}")
    categories = sorted(counts)
    listing = ", ".join(f"{c} {counts[c]}" for c in categories)
    print(f"\nview {view}, {sum(counts.values())} held-out assets ({listing})")
    print(f"{'predictor':28s} |    IoU  CD-L1     NC  F@.05 | IoU per category ({' '.join(categories)})")
    for name, per_category in rows.items():
        means = np.array([np.mean(per_category[c], axis=0) for c in categories])
        mean = means.mean(0)
        print(f"{name:28s} | {mean[0]:6.3f} {mean[1]:6.3f} {mean[2]:6.3f} {mean[3]:6.3f} | "
              + " ".join(f"{x:.2f}" for x in means[:, 0]))


if __name__ == "__main__":
    main()
