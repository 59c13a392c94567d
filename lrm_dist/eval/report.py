"""The report folder people open (``<eval dir>/report``): per-category table (Markdown + Parquet),
metric distribution plots, a best/median/worst contact sheet and an HTML page with 3D views.

Built from the evaluation's tables alone (plus the ground-truth meshes for the contact sheet), so
it can be rebuilt any time: ``lrm-dist eval CONFIG --report-only``.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lrm_dist.eval.tables import read_eval_table, read_summary
from lrm_dist.log import get_logger
from lrm_dist.schema import EVAL_SUMMARY_SCHEMA
from lrm_dist.shards.storage import Storage

log = get_logger(__name__)

REPORT_DIR = "report"


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


def _ground_truth_paths(cfg) -> dict[str, str]:
    import fsspec

    path = cfg.eval.assets_manifest or f"{cfg.stage_dir('assets')}/assets.parquet"
    try:
        with fsspec.open(path, "rb") as fh:
            table = pq.read_table(fh, columns=["asset_id", "mesh_path"])
    except (FileNotFoundError, OSError) as exc:
        log.warning("report: no asset manifest at %s (%s): contact sheet without ground truth", path, exc)
        return {}
    return {r["asset_id"]: r["mesh_path"] for r in table.to_pylist() if r["mesh_path"]}


def _load_canonical(path: Path | str, y_up: bool):
    import trimesh

    from lrm_dist.geometry.frame import to_z_up

    mesh = trimesh.load(path, force="mesh", process=False)
    return to_z_up(mesh, "y") if y_up else mesh


def _contact_sheet(rows: list[dict], cfg, eval_dir: Path, report_dir: Path, size: int) -> str | None:
    from lrm_dist.eval.contact_sheet import compose, pick_best_median_worst, render_row

    gt_paths = _ground_truth_paths(cfg)
    lines = []
    for category in sorted({r["category"] for r in rows}):
        group = []
        for label, row in pick_best_median_worst([r for r in rows if r["category"] == category]):
            gt = _load_canonical(gt_paths[row["asset_id"]], y_up=False) if row["asset_id"] in gt_paths else None
            pred = _load_canonical(eval_dir / row["mesh_file"], y_up=True) if row["mesh_file"] else None
            group.append((f"{label}: {row['asset_id']}", render_row(row, gt, pred, eval_dir, size)))
        if group:
            lines.append((category, group))
    if not lines:
        return None
    compose(lines, size).save(report_dir / "contact_sheet.png")
    return "contact_sheet.png"


def write_report(eval_dir: str, cfg) -> Path:
    """Build ``<eval_dir>/report`` from ``eval.parquet`` and ``summary.parquet``; returns the report folder."""
    from lrm_dist.eval.html import vendor_model_viewer, write_page
    from lrm_dist.eval.plots import plot_distributions

    storage = Storage(eval_dir)
    if not storage.is_local:
        raise ValueError(f"eval report: {eval_dir} is not a local folder; build the report where the tables are")
    root = Path(storage.root)
    summary = read_summary(storage)
    current = summary[0]["eval_hash"] if summary else None
    rows = [r for r in read_eval_table(storage) if r["eval_hash"] == current]
    report = root / REPORT_DIR
    if report.exists():
        shutil.rmtree(report)
    report.mkdir(parents=True)

    (report / "summary.md").write_text(summary_markdown(summary))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(summary, schema=EVAL_SUMMARY_SCHEMA), buf)
    (report / "summary.parquet").write_bytes(buf.getvalue())
    plots = [str(p.relative_to(report)) for p in plot_distributions(rows, report / "plots")]
    sheet = _contact_sheet(rows, cfg, root, report, cfg.eval.report.image_size)

    cards: dict[str, list[dict]] = {}
    for category in sorted({r["category"] for r in rows}):
        chosen = spread_by_iou([r for r in rows if r["category"] == category], cfg.eval.report.models_per_category)
        for r in chosen:
            for key, src in (("report_input", r["input_file"]), ("report_mesh", r["mesh_file"])):
                if src and (root / src).is_file():
                    (report / src).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(root / src, report / src)
                    r[key] = src
        cards[category] = chosen
    notes = []
    viewer = vendor_model_viewer(report, cfg.eval.report.model_viewer_js)
    if viewer is None:
        notes.append("The model-viewer script was not found when this report was built, so 3D views are off. "
                     "Install it (npm install @google/model-viewer) or set eval.report.model_viewer_js, then rebuild.")
        log.warning("report: @google/model-viewer not found (eval.report.model_viewer_js, $LRM_DIST_MODEL_VIEWER_JS, "
                    "node_modules): the HTML page has no 3D views")
    title = f"lrm-dist evaluation {current or ''}".strip()
    if rows:
        title += f" of {rows[0]['checkpoint']}"
    write_page(report / "index.html", title, summary, plots, sheet, cards, viewer, notes)
    log.info("report written to %s", report)
    return report
