"""The run layout: where every stage reads and writes, made once from a ``PipelineConfig``.

``RunLayout.from_config(cfg)`` (or ``cfg.layout()``) fills in every folder and file of a job: a local
path (as written in the config, relative paths left relative) or an fsspec URL (``s3://bucket/run/...``,
joined as text, never through pathlib, which would fold ``s3://`` to ``s3:/``). The config's overrides
(``train.data.shards``, ``train.storage_path``, ``train.export_dir``, ``eval.render_dir``,
``eval.assets_manifest``, ``eval.out_dir``) replace the defaults here and nowhere
else. The table in docs/architecture.md lists who writes and who reads each path.

The file and folder names inside a stage's folder are the constants below; the modules that work inside
one folder (the shard store, the eval tables, the report) use these names relative to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lrm_dist.storage import is_url, join

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig

ASSETS_DIR = "assets"
ASSETS_MANIFEST = "assets.parquet"      # in ASSETS_DIR
MESHES_DIR = "meshes"                   # in ASSETS_DIR: normalised ground-truth meshes (<asset_id>.ply)
PROCEDURAL_DIR = "procedural"           # in ASSETS_DIR: generated procedural meshes
RENDER_DIR = "render"
RENDER_MANIFEST = "render.parquet"      # in RENDER_DIR: one row per asset
SHARD_INDEX = "shards.parquet"          # in RENDER_DIR: one row per shard
SHARDS_DIR = "shards"                   # in RENDER_DIR: the WebDataset tars
TRAIN_DIR = "train"
TRAIN_RAY_DIR = "ray"                   # in TRAIN_DIR: Ray Train storage (one folder per run name)
TRAIN_MODEL_DIR = "model"               # in TRAIN_DIR: the exported HF-layout model
TENSORBOARD_DIR = "tensorboard"         # in TRAIN_DIR (one folder per run name), and in EVAL_DIR
EVAL_DIR = "eval"
EVAL_TABLE = "eval.parquet"             # in the eval folder: one row per asset
EVAL_SUMMARY = "summary.parquet"        # in the eval folder: one row per category (+ class mean, all)
EVAL_PARTS_DIR = "parts"                # in the eval folder: rows of an unfinished run
PROVENANCE_FILE = "provenance.json"     # in the eval folder
REPORT_DIR = "report"                   # in the eval folder


def workdir_of_assets_manifest(manifest: str) -> str:
    """The workdir of an assets manifest at ``<workdir>/assets/assets.parquet`` (the inverse of the rule above):
    manifest paths are relative to it. A URL stays a URL; a local path comes back absolute."""
    if is_url(manifest):
        return manifest.rstrip("/").rsplit("/", 2)[0]
    return os.path.dirname(os.path.dirname(os.path.abspath(manifest)))


@dataclass(frozen=True)
class RunLayout:
    """Every path a job's stages read or write: local paths or fsspec URLs, overrides applied."""

    workdir: str
    assets_dir: str              # assets stage writes; <workdir>/assets
    assets_manifest: str         # assets stage writes, render reads; <assets_dir>/assets.parquet
    meshes_dir: str              # assets stage writes the ground-truth meshes; <assets_dir>/meshes
    procedural_dir: str          # assets stage writes procedural meshes; <assets_dir>/procedural
    render_dir: str              # render stage writes; <workdir>/render
    render_manifest: str         # <render_dir>/render.parquet
    shard_index: str             # <render_dir>/shards.parquet
    shards_dir: str              # <render_dir>/shards
    train_dir: str               # train stage writes <run_name>.config.yaml here; <workdir>/train
    train_config: str            # <train_dir>/<run_name>.config.yaml
    train_shards: str            # train reads: train.data.shards (folder, glob or list), else shards_dir
    train_storage: str           # Ray Train storage: train.storage_path, else <train_dir>/ray
    train_run_dir: str           # <train_storage>/<run_name>: the run's checkpoints and state
    train_tensorboard_dir: str   # <train_dir>/tensorboard/<run_name>
    model_dir: str               # train exports, eval and serve read: train.export_dir, else <train_dir>/model
    eval_render_dir: str         # eval reads: eval.render_dir, else render_dir
    eval_assets_manifest: str    # eval reads the ground truth: eval.assets_manifest, else assets_manifest
    eval_dir: str                # eval writes: eval.out_dir, else <workdir>/eval
    eval_table: str              # <eval_dir>/eval.parquet
    eval_summary: str            # <eval_dir>/summary.parquet
    eval_provenance: str         # <eval_dir>/provenance.json
    eval_tensorboard_dir: str    # <eval_dir>/tensorboard (eval scalars when the train run's is unknown)
    report_dir: str              # <eval_dir>/report

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> RunLayout:
        """The layout of ``cfg``: its workdir's stage folders, with the config's overrides applied."""
        workdir = cfg.workdir
        t, e = cfg.train, cfg.eval
        assets_dir, render_dir = join(workdir, ASSETS_DIR), join(workdir, RENDER_DIR)
        train_dir = join(workdir, TRAIN_DIR)
        shards_dir = join(render_dir, SHARDS_DIR)
        storage = t.storage_path or join(train_dir, TRAIN_RAY_DIR)
        eval_dir = e.out_dir or join(workdir, EVAL_DIR)
        assets_manifest = join(assets_dir, ASSETS_MANIFEST)
        return cls(
            workdir=workdir,
            assets_dir=assets_dir, assets_manifest=assets_manifest,
            meshes_dir=join(assets_dir, MESHES_DIR), procedural_dir=join(assets_dir, PROCEDURAL_DIR),
            render_dir=render_dir, render_manifest=join(render_dir, RENDER_MANIFEST),
            shard_index=join(render_dir, SHARD_INDEX), shards_dir=shards_dir,
            train_dir=train_dir, train_config=join(train_dir, f"{t.run_name}.config.yaml"),
            train_shards=t.data.shards or shards_dir, train_storage=storage,
            train_run_dir=join(storage, t.run_name), train_tensorboard_dir=join(train_dir, TENSORBOARD_DIR, t.run_name),
            model_dir=t.export_dir or join(train_dir, TRAIN_MODEL_DIR),
            eval_render_dir=e.render_dir or render_dir, eval_assets_manifest=e.assets_manifest or assets_manifest,
            eval_dir=eval_dir, eval_table=join(eval_dir, EVAL_TABLE), eval_summary=join(eval_dir, EVAL_SUMMARY),
            eval_provenance=join(eval_dir, PROVENANCE_FILE), eval_tensorboard_dir=join(eval_dir, TENSORBOARD_DIR),
            report_dir=join(eval_dir, REPORT_DIR),
        )
