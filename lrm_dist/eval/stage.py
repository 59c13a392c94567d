"""``evaluate(cfg)``: the evaluation as a Ray Data job, resumable, writing Parquet tables and a report.

Shards of the held-out assets (only the members it needs: meta, cameras, the input view) stream
into an actor pool that runs the model (GPU or CPU actors), then into CPU tasks that score each mesh
against its ground truth; a damaged shard or an undecodable input view fails only its assets' rows.
The driver persists finished rows as they arrive (also when the job itself dies). An asset is skipped
when it already has an ``ok`` row with the same evaluation hash (checkpoint bytes + hashed
settings) and the same render settings hash, so an interrupted or repeated run only does what is left.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lrm_dist.eval.provenance import collect_provenance, write_provenance
from lrm_dist.eval.tables import consolidate, read_eval_rows, summarize, write_part, write_summary
from lrm_dist.log import get_logger, progress_bar
from lrm_dist.storage import Storage

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig
    from lrm_dist.layout import RunLayout

log = get_logger(__name__)

METRICS_VERSION = "1"
"""Bump when the metric code changes its numbers, so old rows are evaluated again."""


@dataclass
class EvalSummary:
    """What an evaluation run did and where its outputs are."""

    out_dir: str
    eval_hash: str
    evaluated: int = 0
    skipped: int = 0
    failed: int = 0
    empty: int = 0
    per_category: list[dict] = field(default_factory=list)
    report: str | None = None
    tensorboard: str | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        overall = next((r for r in self.per_category if r["kind"] == "class_mean"), None)
        head = (f"eval: {self.evaluated} evaluated, {self.skipped} already done, {self.failed} failed, "
                f"{self.empty} empty predictions, {self.seconds:.1f} s -> {self.out_dir}")
        if overall:
            f = ", ".join(f"F@{t:g} {v:.3f}" for t, v in zip(overall["fscore_thresholds"], overall["fscore"]))
            head += (f"\n  class mean: IoU {overall['iou']:.3f}, Chamfer-L1 {overall['chamfer_l1']:.4f}, "
                     f"NC {overall['normal_consistency']:.3f}, {f}")
        head += f"\n  report: {self.report}" if self.report else ""
        return head + (f"\n  tensorboard: {self.tensorboard}" if self.tensorboard else "")


def checkpoint_digest(folder: str | Path) -> str:
    """sha256 of a model folder's config and weights: the checkpoint's identity in the evaluation hash."""
    from lrm_dist.model.pretrained import CONFIG_NAME, LEGACY_WEIGHTS_NAME, WEIGHTS_NAME

    folder = Path(folder)
    digest = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
    return digest.hexdigest()


def resolved_settings(cfg: PipelineConfig, model_config=None) -> dict:
    """The settings that change the numbers. Mesh extraction's come from ``lrm_dist.reconstruct.mesh_settings``
    (eval's, else serve's; the iso-level, else the calibrated one of ``model_config`` when given, else None)."""
    from lrm_dist.reconstruct import mesh_settings

    e = cfg.eval
    mesh = mesh_settings(cfg.serve, e, model_config)
    settings = {
        "metrics_version": METRICS_VERSION, "input_view": e.input_view, "n_points": e.n_points,
        "thresholds": list(e.fscore_thresholds), "padding": e.iou_padding, "seed": e.seed,
        "mesh_resolution": mesh.resolution, "mesher": mesh.mesher, "density_threshold": mesh.threshold,
        "source_distance": _canonical_distance(cfg, model_config),
    }
    if mesh.smoothing:  # only when set, so evaluations made before the setting keep their hash
        settings["mesh_smoothing"] = mesh.smoothing
    return settings


def _canonical_distance(cfg: PipelineConfig, model_config=None) -> float | None:
    """How far the input view's camera is moved, as in the model's training: its config.json says so
    (``canonical_distance``); a model without one (OpenLRM's, or from before) follows train.sample.source_distance."""
    recorded = getattr(model_config, "canonical_distance", None)
    return recorded if recorded is not None else cfg.train.sample.source_distance


def eval_hash(digest: str, settings: dict) -> str:
    payload = json.dumps({"checkpoint": digest, **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def split_assets(
    render_dir: str, assets_manifest: str, categories: list[str] | None, holdout: float = 0.0, split: str = "held_out"
) -> tuple[dict[str, dict], list[dict]]:
    """Rendered (done) assets of one split with their ground truth: ({asset_id: target}, [assets lacking a
    ground truth]). ``split`` is "held_out" (every asset when ``holdout`` is 0), "training" or "all"."""
    from lrm_dist.assets import read_asset_manifest
    from lrm_dist.shards.manifest import read_render_manifest
    from lrm_dist.shards.split import is_heldout

    rendered = [r for r in read_render_manifest(render_dir).to_pylist() if r["status"] == "done"]
    if not rendered:
        raise FileNotFoundError(f"eval: no rendered assets in {render_dir} (render.parquet missing or empty)")
    if split not in ("held_out", "training", "all"):
        raise ValueError(f"eval: unknown split {split!r} (held_out, training or all)")
    if split != "all" and (holdout > 0 or split == "training"):
        total = len(rendered)
        rendered = [r for r in rendered if is_heldout(r["asset_id"], holdout) == (split == "held_out")]
        if not rendered:
            raise ValueError(f"eval: none of the {total} rendered assets is in the {split} split "
                             f"(shards.holdout_fraction={holdout}): render more assets or change the fraction")
    assets = {r["asset_id"]: r for r in read_asset_manifest(assets_manifest).to_pylist()}
    targets, missing = {}, []
    for r in rendered:
        asset = assets.get(r["asset_id"])
        if asset is not None and categories and asset["category"] not in categories:
            continue
        target = {"category": asset["category"] if asset else "unknown", "shard": r["shard"],
                  "render_settings_hash": r["settings_hash"], "mesh_path": (asset or {}).get("mesh_path")}
        if asset is None or asset["status"] != "ok" or not asset.get("mesh_path"):
            missing.append({"asset_id": r["asset_id"], **target})
        else:
            targets[r["asset_id"]] = target
    return targets, missing


def _first_per_category(targets: dict[str, dict], limit: int) -> dict[str, dict]:
    """At most ``limit`` of ``targets`` (ordered by id), taken in turn from each category, so a limited
    evaluation still has every category's mean."""
    by_category: dict[str, list[str]] = {}
    for asset_id in targets:
        by_category.setdefault(targets[asset_id]["category"], []).append(asset_id)
    queues = [ids for _, ids in sorted(by_category.items())]
    chosen: list[str] = []
    while len(chosen) < limit and any(queues):
        for ids in queues:
            if ids and len(chosen) < limit:
                chosen.append(ids.pop(0))
    return {a: targets[a] for a in sorted(chosen)}


def _failed_row(asset_id: str, target: dict, reason: str, settings: dict) -> dict:
    """An EVAL_SCHEMA row for an asset the job could not score at all."""
    from lrm_dist.schema import EVAL_SCHEMA

    row = dict.fromkeys(EVAL_SCHEMA.names)
    row.update({"asset_id": asset_id, "category": target["category"], "status": "failed", "reason": reason,
                "eval_hash": settings["eval_hash"], "checkpoint": settings["checkpoint"],
                "render_settings_hash": target["render_settings_hash"], "fscore_thresholds": list(settings["thresholds"])})
    return row


def _scored_rows(
    cfg: PipelineConfig, pending: dict[str, dict], settings: dict, render_dir: str, out_dir: str
) -> Iterator[dict]:
    """The Ray Data pipeline: shards -> input rows -> reconstruction actors -> scoring tasks -> EVAL rows."""
    import ray

    from lrm_dist.eval.workers import ReconstructActor, score_batch, shard_inputs
    from lrm_dist.ray_utils import init_ray
    from lrm_dist.shards.manifest import SHARDS_DIR

    e, actors = cfg.eval, cfg.eval.actors
    shards = Storage(render_dir)
    items = [{"url": shards.url_of(f"{SHARDS_DIR}/{name}"), "shard": name}
             for name in sorted({t["shard"] for t in pending.values()})]
    init_ray(cfg.ray)
    ds = ray.data.from_items(items, override_num_blocks=len(items))  # one read task per shard
    ds = ds.flat_map(shard_inputs, fn_kwargs={"view": e.input_view, "pending": pending})
    ds = ds.map_batches(
        ReconstructActor, batch_size=actors.batch_size, compute=ray.data.ActorPoolStrategy(size=actors.count),
        num_gpus=actors.num_gpus or None, num_cpus=actors.num_cpus,
        fn_constructor_kwargs={"checkpoint": settings["checkpoint"], "resolution": settings["mesh_resolution"],
                               "threshold": settings["density_threshold"], "source_distance": settings["source_distance"],
                               "precision": actors.precision, "revision": cfg.model.revision,
                               "mesher": settings["mesher"], "smoothing": settings.get("mesh_smoothing", 0)},
    )
    ds = ds.map_batches(score_batch, batch_size=1, num_cpus=e.metric_cpus, fn_kwargs={"out_dir": out_dir, "settings": settings})
    for row in ds.iter_rows():
        yield dict(row)


def evaluate(cfg: PipelineConfig) -> EvalSummary:
    """Evaluate ``cfg.eval.checkpoint`` (else the train stage's exported model, else ``cfg.model.pretrained``)
    on the held-out assets into ``layout().eval_dir``; see the module doc. Holds the output folder's lock:
    one eval per folder."""
    from lrm_dist.locks import run_locked_stage

    return run_locked_stage(cfg, "eval", lambda layout: layout.eval_dir, _evaluate)


def _evaluate(cfg: PipelineConfig, layout: RunLayout) -> EvalSummary:
    from lrm_dist.eval.tensorboard import log_eval_scalars
    from lrm_dist.model.pretrained import load_config, resolve_pretrained
    from lrm_dist.storage import exists, join

    start = time.perf_counter()
    e = cfg.eval
    trained = layout.model_dir  # a local folder or an object-store URL
    checkpoint = e.checkpoint or (trained if exists(join(trained, "config.json")) else cfg.model.pretrained)
    if not checkpoint:
        raise ValueError(f"eval: no model to evaluate; set eval.checkpoint, train one (no {trained}), "
                         "or set model.pretrained")
    render_dir, assets_manifest, out_dir = layout.eval_render_dir, layout.eval_assets_manifest, layout.eval_dir
    folder = resolve_pretrained(checkpoint, revision=cfg.model.revision)
    settings = resolved_settings(cfg, load_config(folder))  # the iso-level: else the model's calibrated one
    digest = checkpoint_digest(folder)
    settings.update(eval_hash=eval_hash(digest, settings), checkpoint=str(checkpoint), save_meshes=e.save_meshes)
    h = settings["eval_hash"]

    holdout = cfg.shards.holdout_fraction
    if e.split == "training" or (e.split == "held_out" and holdout == 0):
        log.warning("eval: scoring assets the model was trained on (eval.split=%s, shards.holdout_fraction=%s)",
                    e.split, holdout)
    targets, missing = split_assets(render_dir, assets_manifest, e.categories, holdout, e.split)
    storage = Storage(out_dir)
    storage.makedirs()
    previous = read_eval_rows(storage)
    done = {a for a, t in targets.items()
            if (r := previous.get(a)) and r["status"] == "ok" and r["eval_hash"] == h
            and r["render_settings_hash"] == t["render_settings_hash"]}
    pending = {a: t for a, t in sorted(targets.items()) if a not in done}
    if e.limit is not None:
        pending = _first_per_category(pending, e.limit)
    log.info("eval %s of %s: %d %s assets, %d already evaluated, %d to do, %d without ground truth",
             h, checkpoint, len(targets), e.split.replace("_", "-"), len(done), len(pending), len(missing))

    reason = f"no ground-truth mesh for this asset in {assets_manifest}"
    new_rows = [_failed_row(m["asset_id"], m, reason, settings) for m in missing]
    if pending:
        buffer: list[dict] = []
        bar = progress_bar(len(pending), desc="eval", unit="asset")
        try:
            for row in _scored_rows(cfg, pending, settings, render_dir, out_dir):
                buffer.append(row)
                bar.update(1)
                if len(buffer) >= e.flush_every:
                    write_part(storage, buffer)
                    new_rows, buffer = new_rows + buffer, []
        except BaseException:  # the job itself failed (cluster, interrupt): keep the rows already scored
            if buffer:
                write_part(storage, buffer)
            raise
        bar.close()
        seen = {r["asset_id"] for r in new_rows + buffer}
        buffer += [_failed_row(a, t, f"sample with render settings {t['render_settings_hash']} not found in {t['shard']}",
                               settings) for a, t in pending.items() if a not in seen]
        if buffer:
            write_part(storage, buffer)
            new_rows += buffer
    merged = {**previous, **{r["asset_id"]: r for r in new_rows}}
    consolidate(storage, merged)
    selected = set(targets) | {m["asset_id"] for m in missing}
    summary = summarize([r for a, r in merged.items() if a in selected], h, settings["thresholds"])
    write_summary(storage, summary)
    provenance = collect_provenance(cfg, str(checkpoint), settings, summary)
    write_provenance(storage, provenance)
    evaluated = [r for r in new_rows if r["asset_id"] in pending]
    result = EvalSummary(
        out_dir=out_dir, eval_hash=h, evaluated=len(evaluated), skipped=len(done),
        failed=sum(r["status"] != "ok" for r in new_rows), empty=sum(bool(r["empty"]) for r in evaluated),
        per_category=summary, tensorboard=log_eval_scalars(summary, provenance, out_dir),
    )
    if e.report.enabled:
        from lrm_dist.eval.report import write_report

        result.report = str(write_report(out_dir, cfg))
    result.seconds = time.perf_counter() - start
    log.info("%s", result)
    return result
