"""The evaluation's Parquet tables: per-asset rows (``eval.parquet``) and the per-category summary.

Finished rows are persisted as they arrive (``parts/part-*.parquet``, each written atomically), so an
interrupted job loses at most ``flush_every`` assets; the next run folds the parts into
``eval.parquet`` (one row per asset, the newest wins) and skips what is already evaluated.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pyarrow as pa

from lrm_dist.layout import EVAL_PARTS_DIR as PARTS_DIR
from lrm_dist.layout import EVAL_SUMMARY as SUMMARY_TABLE
from lrm_dist.layout import EVAL_TABLE
from lrm_dist.parquet import read_rows, write_table
from lrm_dist.schema import EVAL_SCHEMA, EVAL_SUMMARY_SCHEMA
from lrm_dist.storage import Storage


def _read_table(storage: Storage, name: str, schema: pa.Schema) -> list[dict]:
    return read_rows(storage, name, schema, "an eval table")


def _write_table(storage: Storage, name: str, rows: list[dict], schema: pa.Schema) -> None:
    write_table(storage, name, rows, schema)


def read_eval_rows(storage: Storage) -> dict[str, dict]:
    """Every evaluated asset's newest row: ``eval.parquet`` overlaid with parts left by an unfinished run."""
    rows: dict[str, dict] = {}
    if storage.exists(EVAL_TABLE):
        rows.update((r["asset_id"], r) for r in _read_table(storage, EVAL_TABLE, EVAL_SCHEMA))
    for name in sorted(n for n in storage.listdir(PARTS_DIR) if n.endswith(".parquet") and ".tmp" not in n):
        rows.update((r["asset_id"], r) for r in _read_table(storage, f"{PARTS_DIR}/{name}", EVAL_SCHEMA))
    return rows


def read_eval_table(storage: Storage) -> list[dict]:
    """The rows of ``eval.parquet`` as written by the last finished run."""
    return _read_table(storage, EVAL_TABLE, EVAL_SCHEMA)


def write_part(storage: Storage, rows: list[dict]) -> str:
    """Persist finished rows now (names sort by time, so later parts override earlier ones)."""
    storage.makedirs(PARTS_DIR)
    name = f"{PARTS_DIR}/part-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}.parquet"
    _write_table(storage, name, rows, EVAL_SCHEMA)
    return name


def consolidate(storage: Storage, rows: dict[str, dict]) -> None:
    """Write all rows to ``eval.parquet`` (sorted by asset), then drop the parts they came from."""
    parts = [n for n in storage.listdir(PARTS_DIR) if n.endswith(".parquet")]
    _write_table(storage, EVAL_TABLE, [rows[k] for k in sorted(rows)], EVAL_SCHEMA)
    for name in parts:
        storage.remove(f"{PARTS_DIR}/{name}")


def _means(rows: list[dict], n_thresholds: int) -> dict:
    if not rows:
        nan = float("nan")
        return {"iou": nan, "iou_median": nan, "chamfer_l1": nan, "normal_consistency": nan, "fscore": [nan] * n_thresholds}
    iou = np.array([r["iou"] for r in rows])
    return {
        "iou": float(iou.mean()), "iou_median": float(np.median(iou)),
        "chamfer_l1": float(np.mean([r["chamfer_l1"] for r in rows])),
        "normal_consistency": float(np.mean([r["normal_consistency"] for r in rows])),
        "fscore": [float(v) for v in np.mean([r["fscore"] for r in rows], axis=0)],
    }


def summarize(rows: list[dict], eval_hash: str, thresholds: list[float]) -> list[dict]:
    """Per-category rows, then the mean over categories and the mean over all assets.

    Only rows of ``eval_hash`` count; failed rows are counted but not averaged (empty predictions are
    averaged: they score as the worst).
    """
    rows = [r for r in rows if r["eval_hash"] == eval_hash]
    out = []
    for category in sorted({r["category"] for r in rows}):
        mine = [r for r in rows if r["category"] == category]
        ok = [r for r in mine if r["status"] == "ok"]
        out.append({"kind": "category", "category": category, "eval_hash": eval_hash, "n_assets": len(ok),
                    "n_empty": sum(bool(r["empty"]) for r in ok), "n_failed": len(mine) - len(ok),
                    "fscore_thresholds": list(thresholds), **_means(ok, len(thresholds))})
    scored = [r for r in out if r["n_assets"] > 0]
    if scored:
        keys = ("iou", "iou_median", "chamfer_l1", "normal_consistency")
        class_mean = {k: float(np.mean([r[k] for r in scored])) for k in keys}
        class_mean["fscore"] = [float(v) for v in np.mean([r["fscore"] for r in scored], axis=0)]
        out.append({"kind": "class_mean", "category": "*", "eval_hash": eval_hash,
                    "n_assets": sum(r["n_assets"] for r in out), "n_empty": sum(r["n_empty"] for r in out),
                    "n_failed": sum(r["n_failed"] for r in out), "fscore_thresholds": list(thresholds), **class_mean})
    ok_all = [r for r in rows if r["status"] == "ok"]
    out.append({"kind": "all", "category": "*", "eval_hash": eval_hash, "n_assets": len(ok_all),
                "n_empty": sum(bool(r["empty"]) for r in ok_all), "n_failed": len(rows) - len(ok_all),
                "fscore_thresholds": list(thresholds), **_means(ok_all, len(thresholds))})
    return out


def write_summary(storage: Storage, summary: list[dict]) -> None:
    _write_table(storage, SUMMARY_TABLE, summary, EVAL_SUMMARY_SCHEMA)


def read_summary(storage: Storage) -> list[dict]:
    return _read_table(storage, SUMMARY_TABLE, EVAL_SUMMARY_SCHEMA)
