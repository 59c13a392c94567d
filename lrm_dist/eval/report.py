"""The report folder people open (``<eval dir>/report``): provenance (``report.json``, ``config.yaml``),
per-category table (Markdown + Parquet), metric distribution plots, the training loss curve, a
best/median/worst contact sheet and an HTML page with 3D views.

Built from the evaluation's tables and its ``provenance.json`` (plus the ground-truth meshes for the
contact sheet and the train run's TensorBoard files for the curve), so it can be rebuilt any time:
``lrm-dist eval -c CONFIG --report-only``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrm_dist.eval.tables import read_eval_table, read_summary
from lrm_dist.layout import REPORT_DIR
from lrm_dist.log import get_logger
from lrm_dist.parquet import write_table
from lrm_dist.schema import EVAL_SUMMARY_SCHEMA
from lrm_dist.storage import Storage

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig

log = get_logger(__name__)


def summary_markdown(summary: list[dict]) -> str:
    """The per-category table as GitHub Markdown."""
    thresholds = summary[0]["fscore_thresholds"] if summary else []
    head = ["category", "assets", "empty", "failed", "IoU", "IoU median", "Chamfer-L1", "NC"] + [f"F@{t:g}" for t in thresholds]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":--"] + ["--:"] * (len(head) - 1)) + "|"]

    def f(v, d=3):
        return "-" if v is None or v != v else f"{v:.{d}f}"

    for r in summary:
        name = {"class_mean": "**mean over categories**", "all": "**all assets**"}.get(r["kind"], r["category"])
        cells = [name, str(r["n_assets"]), str(r["n_empty"]), str(r["n_failed"]), f(r["iou"]), f(r["iou_median"]),
                 f(r["chamfer_l1"], 4), f(r["normal_consistency"])] + [f(v) for v in r["fscore"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spread_by_iou(rows: list[dict], k: int) -> list[dict]:
    """Up to ``k`` ok rows evenly spaced over the IoU ranking (best first, worst last)."""
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: (-r["iou"], r["asset_id"]))
    if len(ok) <= k:
        return ok
    idx = sorted({int(round(i)) for i in np.linspace(0, len(ok) - 1, k)})
    return [ok[i] for i in idx]


def _ground_truth_paths(cfg: PipelineConfig) -> dict[str, str]:
    from lrm_dist.assets import read_asset_manifest

    path = cfg.layout().eval_assets_manifest
    try:
        rows = read_asset_manifest(path).to_pylist()
    except (OSError, ValueError) as exc:
        log.warning("report: no asset manifest at %s (%s): contact sheet without ground truth", path, exc)
        return {}
    return {r["asset_id"]: r["mesh_path"] for r in rows if r["mesh_path"]}


def _load_canonical(path: Path | str, y_up: bool):
    import trimesh

    from lrm_dist.geometry.frame import to_z_up
    from lrm_dist.storage import local_file

    with local_file(str(path)) as local:  # a ground truth in an object-store workdir: a local copy
        mesh = trimesh.load(local, force="mesh", process=False)
    return to_z_up(mesh, "y") if y_up else mesh


def _fetched(storage: Storage, root: Path, src: str | None) -> Path | None:
    """The local file of the eval folder's ``src`` (``root/src``; downloaded there first when the eval
    folder is on object storage), or None when there is none."""
    if not src:
        return None
    path = root / src
    if not storage.is_local and not path.is_file() and storage.isfile(src):
        storage.get_file(src, path)
    return path if path.is_file() else None


def _contact_sheet(
    rows: list[dict], cfg: PipelineConfig, storage: Storage, eval_dir: Path, report_dir: Path, size: int
) -> str | None:
    from lrm_dist.eval.contact_sheet import compose, pick_best_median_worst, render_row

    gt_paths = _ground_truth_paths(cfg)
    lines = []
    for category in sorted({r["category"] for r in rows}):
        group = []
        for label, row in pick_best_median_worst([r for r in rows if r["category"] == category]):
            gt = _load_canonical(gt_paths[row["asset_id"]], y_up=False) if row["asset_id"] in gt_paths else None
            _fetched(storage, eval_dir, row["input_file"])  # render_row reads it from eval_dir
            pred_file = _fetched(storage, eval_dir, row["mesh_file"])
            pred = _load_canonical(pred_file, y_up=True) if pred_file else None
            group.append((f"{label}: {row['asset_id']}", render_row(row, gt, pred, eval_dir, size)))
        if group:
            lines.append((category, group))
    if not lines:
        return None
    compose(lines, size).save(report_dir / "contact_sheet.png")
    return "contact_sheet.png"


def _loss_curve(prov: dict, report_dir: Path) -> dict | None:
    """Plot the train run's loss curves into ``plots/training_loss.png`` when its event files have any."""
    from lrm_dist.eval.plots import plot_loss_curves
    from lrm_dist.eval.tensorboard import read_loss_curves

    log_dir = prov["training"]["tensorboard_dir"]
    curves = read_loss_curves(log_dir) if log_dir else {}
    if not curves:
        return None
    path = plot_loss_curves(curves, report_dir / "plots" / "training_loss.png", prov["training"]["step"])
    return {"file": str(path.relative_to(report_dir)), "tensorboard_dir": log_dir, "tags": sorted(curves),
            "last_step": max(steps[-1] for steps, _ in curves.values())}


def _plain(value):
    """``value`` with NaN floats as None (strict JSON)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_report(eval_dir: str, cfg: PipelineConfig) -> Path | str:
    """Build ``<eval_dir>/report`` (``layout().report_dir``: the job passes ``layout().eval_dir``) from
    ``eval.parquet``, ``summary.parquet`` and ``provenance.json``; returns the report folder. An eval folder
    on object storage gets the report built in a local temporary folder (the files it shows downloaded
    there) and uploaded; its URL is returned."""
    import tempfile

    from lrm_dist.storage import configure_from

    configure_from(cfg)
    storage = Storage(eval_dir)
    if storage.is_local:
        return _write_report(storage, Path(storage.root), cfg)
    with tempfile.TemporaryDirectory(prefix="lrm-report-") as tmp:
        report = _write_report(storage, Path(tmp), cfg)
        storage.remove_tree(REPORT_DIR)
        storage.upload_folder(report, REPORT_DIR, last=("index.html",))
    log.info("report uploaded to %s", storage.url_of(REPORT_DIR))
    return storage.url_of(REPORT_DIR)


def _write_report(storage: Storage, root: Path, cfg: PipelineConfig) -> Path:
    """The report under ``root/report``; ``root`` is the eval folder itself, or its local stand-in."""
    from lrm_dist.eval.html import provenance_html, vendor_model_viewer, write_page
    from lrm_dist.eval.plots import plot_distributions
    from lrm_dist.eval.provenance import fallback_provenance, read_provenance, report_title, utc_now

    summary = read_summary(storage)
    current = summary[0]["eval_hash"] if summary else None
    rows = [r for r in read_eval_table(storage) if r["eval_hash"] == current]
    report = root / REPORT_DIR
    if report.exists():
        shutil.rmtree(report)
    report.mkdir(parents=True)

    notes = []
    prov = read_provenance(storage, current)
    if prov is None:
        prov = fallback_provenance(cfg, rows[0]["checkpoint"] if rows else "unknown", current, summary)
        notes.append("This evaluation has no provenance record (provenance.json): the model comes from its rows, the "
                     "training step from the model folder, and the config is the one given when the report was built.")
    prov["report_built_at"] = utc_now()
    (report / "config.yaml").write_text(prov["config"])
    (report / "summary.md").write_text(summary_markdown(summary))
    write_table(Storage(str(report)), "summary.parquet", summary, EVAL_SUMMARY_SCHEMA)
    plots = [str(p.relative_to(report)) for p in plot_distributions(rows, report / "plots")]
    curve = _loss_curve(prov, report)
    sheet = _contact_sheet(rows, cfg, storage, root, report, cfg.eval.report.image_size)

    cards: dict[str, list[dict]] = {}
    for category in sorted({r["category"] for r in rows}):
        chosen = spread_by_iou([r for r in rows if r["category"] == category], cfg.eval.report.models_per_category)
        for r in chosen:
            for key, src in (("report_input", r["input_file"]), ("report_mesh", r["mesh_file"])):
                if _fetched(storage, root, src):
                    (report / src).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(root / src, report / src)
                    r[key] = src
        cards[category] = chosen
    viewer = vendor_model_viewer(report, cfg.eval.report.model_viewer_js)
    if viewer is None:
        notes.append("The model-viewer script was not found when this report was built, so 3D views are off. "
                     "Install it (npm install @google/model-viewer) or set eval.report.model_viewer_js, then rebuild.")
        log.warning("report: @google/model-viewer not found (eval.report.model_viewer_js, $LRM_DIST_MODEL_VIEWER_JS, "
                    "node_modules): the HTML page has no 3D views")
    title = report_title(prov)
    class_mean = next((r for r in summary if r["kind"] == "class_mean"), None)
    (report / "report.json").write_text(json.dumps({
        "title": title, "provenance": {k: v for k, v in prov.items() if k != "config"}, "config_file": "config.yaml",
        "class_mean": {k: _plain(v) for k, v in class_mean.items()} if class_mean else None,
        "plots": plots, "loss_curve": curve, "contact_sheet": sheet, "model_viewer": viewer is not None,
    }, indent=2) + "\n")
    write_page(report / "index.html", title, provenance_html(prov, "config.yaml"), summary, plots,
               curve["file"] if curve else None, sheet, cards, viewer, notes)
    log.info("report written to %s", report)
    return report
