"""Where an evaluation's numbers come from: the model and the training step behind it, the resolved
config, when it ran, the evaluation hash, how many assets, the lrm-dist version.

The job records it as ``<eval dir>/provenance.json`` next to the tables; the report shows it and the
eval scalars go to TensorBoard at its training step. The step comes from the model folder's
``training.json`` (the last checkpoint's ``progress.json``, copied there by the train stage's export),
else, for this config's own train export, from the run's newest checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec

from lrm_dist.layout import PROVENANCE_FILE
from lrm_dist.log import get_logger
from lrm_dist.storage import Storage, exists, is_url, join
from lrm_dist.storage import glob as storage_glob

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig

log = get_logger(__name__)

TRAINING_FILE = "training.json"
PROGRESS_FILE = "progress.json"


def utc_now() -> str:
    """The current time as ISO 8601 UTC to the second (``2025-01-31T12:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("provenance: cannot read %s (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _newest_progress(run_dir: Path) -> Path | None:
    """The ``progress.json`` of a Ray Train run's newest checkpoint folder (``checkpoint_<step>``)."""
    found = sorted(run_dir.glob(f"checkpoint_*/{PROGRESS_FILE}")) if run_dir.is_dir() else []
    return found[-1] if found else None


def training_info(cfg: PipelineConfig, checkpoint: str) -> dict:
    """The step, training seconds and samples behind a model, its train run and TensorBoard folder, where known.

    Only a local model folder has them; the run and TensorBoard folder are known when the model is this
    config's train export (``cfg.layout().model_dir``).
    """
    info = {"step": None, "train_seconds": None, "samples": None, "source": None, "run": None, "tensorboard_dir": None}
    if is_url(checkpoint):
        return _remote_training_info(cfg, checkpoint.rstrip("/"), info)
    folder = Path(checkpoint).expanduser()
    if "://" in checkpoint or not (folder / "config.json").is_file():
        return info
    layout = cfg.layout()
    trained = Path(layout.model_dir)
    own = "://" not in cfg.workdir and trained.is_dir() and trained.resolve() == folder.resolve()
    source = folder / TRAINING_FILE if (folder / TRAINING_FILE).is_file() else None
    if own:
        source = source or _newest_progress(Path(layout.train_run_dir))
        board = Path(layout.train_tensorboard_dir)
        info.update(run=cfg.train.run_name, tensorboard_dir=str(board.resolve()) if board.is_dir() else None)
    progress = _read_json(source) if source else None
    if progress:
        info.update({k: progress.get(k) for k in ("step", "train_seconds", "samples")}, source=str(source.resolve()))
    return info


def _remote_training_info(cfg: PipelineConfig, folder: str, info: dict) -> dict:
    """``training_info`` for a model folder on object storage (the same files, read through fsspec)."""
    if not exists(join(folder, "config.json")):
        return info
    source = join(folder, TRAINING_FILE) if exists(join(folder, TRAINING_FILE)) else None
    layout = cfg.layout()
    if layout.model_dir.rstrip("/") == folder:  # this config's own train export
        run_dir = layout.train_run_dir
        if source is None:
            found = storage_glob(join(run_dir, "checkpoint_*", PROGRESS_FILE)) if is_url(run_dir) else []
            source = found[-1] if found else None
        board = layout.train_tensorboard_dir
        info.update(run=cfg.train.run_name, tensorboard_dir=board if exists(board) else None)
    progress = None
    if source:
        try:
            with fsspec.open(source, "rb") as fh:
                progress = json.loads(fh.read())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("provenance: cannot read %s (%s)", source, exc)
    if isinstance(progress, dict):
        info.update({k: progress.get(k) for k in ("step", "train_seconds", "samples")}, source=source)
    return info


def _asset_counts(summary: list[dict]) -> dict:
    overall = next((r for r in summary if r["kind"] == "all"), None) or {"n_assets": 0, "n_empty": 0, "n_failed": 0}
    return {"scored": overall["n_assets"], "empty": overall["n_empty"], "failed": overall["n_failed"],
            "categories": sorted(r["category"] for r in summary if r["kind"] == "category")}


def collect_provenance(cfg: PipelineConfig, checkpoint: str, settings: dict, summary: list[dict]) -> dict:
    """The provenance record of an evaluation that just ran (``settings``: the job's resolved settings)."""
    from lrm_dist import __version__
    from lrm_dist.config import dump_config

    config = dump_config(cfg)
    return {
        "model": checkpoint, "model_revision": cfg.model.revision, "training": training_info(cfg, checkpoint),
        "eval_hash": settings["eval_hash"], "evaluated_at": utc_now(),
        "settings": {k: v for k, v in settings.items() if k not in ("eval_hash", "checkpoint")},
        "assets": _asset_counts(summary), "config": config,
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(), "lrm_dist_version": __version__,
    }


def fallback_provenance(cfg: PipelineConfig, checkpoint: str, eval_hash: str | None, summary: list[dict]) -> dict:
    """What a report can say about tables evaluated without a provenance record: the model from the rows,
    the current config, no evaluation time."""
    prov = collect_provenance(cfg, checkpoint, {"eval_hash": eval_hash}, summary)
    prov.update(evaluated_at=None, settings=None)
    return prov


def report_title(prov: dict) -> str:
    """The report's human title: ``lrm-dist evaluation: <model> at step N``."""
    step = prov["training"]["step"]
    return f"lrm-dist evaluation: {prov['model']}" + (f" at step {step}" if step is not None else "")


def write_provenance(storage: Storage, prov: dict) -> None:
    """Record the provenance next to the tables (``provenance.json``)."""
    storage.write_bytes_atomic(PROVENANCE_FILE, (json.dumps(prov, indent=2) + "\n").encode())


def read_provenance(storage: Storage, eval_hash: str | None) -> dict | None:
    """The recorded provenance of evaluation ``eval_hash`` (None when absent or of another evaluation)."""
    if not storage.exists(PROVENANCE_FILE):
        return None
    try:
        prov = json.loads(storage.read_bytes(PROVENANCE_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("provenance: %s is not valid JSON (%s)", storage.url_of(PROVENANCE_FILE), exc)
        return None
    return prov if isinstance(prov, dict) and prov.get("eval_hash") == eval_hash else None
