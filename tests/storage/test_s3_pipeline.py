"""The pipeline with ``workdir: s3://bucket/run`` against a real S3 server (SeaweedFS on 127.0.0.1).

The integration test runs assets -> render (real Blender) -> train (Ray Train + DeepSpeed, CPU) ->
eval through the CLI in fresh processes whose current folder is an empty temporary one, with the
endpoint in ``storage.options`` and the credentials in the standard AWS variables; every output must
be in the bucket and nothing on local disk. Training then resumes from its checkpoint in the bucket,
and a copy of the workdir (the original deleted) evaluates on its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def _assets_cfg(workdir: str):
    from lrm_dist.config import load_config

    sources = [{"kind": "procedural", "per_category": 1, "categories": ["chair", "table"], "colors": False}]
    cfg = load_config(None, [f"workdir={workdir}"])
    return cfg.model_copy(update={"assets": cfg.assets.model_validate({"sources": sources})})


def test_assets_stage_writes_to_the_bucket_and_reuses_it(s3_env, tmp_path, monkeypatch):
    from lrm_dist.assets import build_assets, read_asset_manifest

    monkeypatch.chdir(tmp_path)
    workdir = f"s3://{s3_env.bucket}/assets-only"
    first = build_assets(_assets_cfg(workdir))
    assert first.ok == 2 and first.manifest == f"{workdir}/assets/assets.parquet"
    rows = read_asset_manifest(first.manifest).to_pylist()
    assert {r["mesh_path"] for r in rows} == {f"{workdir}/assets/meshes/{r['asset_id']}.ply" for r in rows}
    assert all(r["uri"].startswith(f"{workdir}/assets/procedural/") for r in rows)
    # Inside the manifest the paths are relative to the workdir (a copied workdir resolves to itself).
    import pyarrow.parquet as pq

    with s3_env.fs().open(f"{s3_env.bucket}/assets-only/assets/assets.parquet") as fh:
        raw = pq.read_table(fh).to_pylist()
    assert sorted(r["mesh_path"] for r in raw) == sorted(f"assets/meshes/{r['asset_id']}.ply" for r in rows)
    again = build_assets(_assets_cfg(workdir))
    assert again.reused == 2 and again.ok == 2
    assert list(tmp_path.iterdir()) == []  # nothing written to the local disk


def _run(args: list[str], env: dict, cwd: Path, timeout: float) -> str:
    done = subprocess.run([sys.executable, "-m", "lrm_dist.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    return out


def _files(fs, prefix: str) -> list[str]:
    """Every object under ``prefix`` (relative names)."""
    return sorted(name[len(prefix) + 1:] for name, info in fs.find(prefix, detail=True).items()
                  if info["type"] == "file")


@pytest.mark.integration
@pytest.mark.timeout(1500)  # about 2 minutes here; DeepSpeed's op compiles first in a fresh clone
def test_the_pipeline_runs_on_s3_and_a_copied_workdir_evaluates(s3_server, tmp_path):
    pytest.importorskip("bpy")
    bucket, fs = s3_server.bucket, s3_server.fs()
    cfg = {
        "workdir": f"s3://{bucket}/run",
        "storage": {"options": {"endpoint_url": s3_server.endpoint}},  # credentials: the environment
        "ray": {"num_cpus": 2},
        "assets": {"workers": 1, "sources": [
            {"kind": "procedural", "per_category": 1, "categories": ["chair", "table"], "colors": False}]},
        "render": {"views": 2, "resolution": 32, "samples": 1, "occupancy_resolution": 16,
                   "actors": {"count": 1}},
        "shards": {"holdout_fraction": 0},
        "model": {"size": "tiny"},
        "train": {
            "num_workers": 1, "max_steps": 1, "micro_batch_size": 2, "checkpoint_every": 1, "log_every": 1,
            "image_every": 1,
            "sample": {"supervision_views": 2, "render_res_low": 24, "render_res_high": 32, "patch_size": 16},
            "data": {"shuffle_buffer": 2, "loader_workers": 0},
        },
        "eval": {"n_points": 1000, "mesh_resolution": 32},
    }
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cwd = tmp_path / "cwd"  # the jobs' current folder: must stay empty
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    env.update({"AWS_ACCESS_KEY_ID": s3_server.key, "AWS_SECRET_ACCESS_KEY": s3_server.secret,
                "AWS_DEFAULT_REGION": "us-east-1", "LRM_DIST_CACHE": str(tmp_path / "cache"),
                "LRM_DIST_PROGRESS": "0", "RAY_USAGE_STATS_ENABLED": "0"})

    # 1. assets -> render -> train (1 step)
    _run(["run", "-c", str(config), "--stages", "assets,render,train"], env, cwd, timeout=600)
    files = _files(fs, f"{bucket}/run")
    for expected in ("assets/assets.parquet", "assets/meshes/proc-chair-s0-00000.ply",
                     "assets/procedural/table/proc-table-s0-00000.glb", "render/render.parquet",
                     "render/shards.parquet", "render/shards/shard-000000.tar", "train/lrm.config.yaml",
                     "train/model/config.json", "train/model/model.safetensors", "train/model/training.json"):
        assert expected in files, (expected, files)
    assert any(f.startswith("train/ray/lrm/checkpoint_00000001/") for f in files), files
    assert any(f.startswith("train/tensorboard/lrm/events.out.tfevents") for f in files), files
    assert not any(f.endswith(".tmp") for f in files), files

    # 2. training resumes from its checkpoint in the bucket (step 1 -> 2), then eval scores the export
    out = _run(["run", "-c", str(config), "--stages", "train,eval", "--set", "train.max_steps=2"], env, cwd,
               timeout=450)
    assert "resumed from" in out and "at step 1" in out, out[-6000:]
    assert fs.cat_file(f"{bucket}/run/train/model/training.json").startswith(b'{"step": 2'), out[-3000:]
    files = _files(fs, f"{bucket}/run")
    for expected in ("eval/eval.parquet", "eval/summary.parquet", "eval/provenance.json", "eval/report/index.html",
                     "eval/report/report.json", "eval/report/contact_sheet.png"):
        assert expected in files, (expected, files)
    rows = _eval_rows(fs, f"{bucket}/run/eval/eval.parquet")
    assert sorted(r["category"] for r in rows) == ["chair", "table"] and all(r["status"] == "ok" for r in rows)
    assert {r["checkpoint"] for r in rows} == {f"s3://{bucket}/run/train/model"}
    import json

    report = json.loads(fs.cat_file(f"{bucket}/run/eval/report/report.json"))
    assert report["provenance"]["training"]["step"] == 2 and report["loss_curve"] is not None, report

    # 3. a copy of the workdir evaluates on its own: the original is gone, the copy's old eval removed
    fs.copy(f"{bucket}/run", f"{bucket}/copy", recursive=True)
    fs.rm(f"{bucket}/run", recursive=True)
    fs.rm(f"{bucket}/copy/eval", recursive=True)
    assert _files(fs, f"{bucket}/run") == []
    out = _run(["eval", "-c", str(config), "--set", f"workdir=s3://{bucket}/copy"], env, cwd, timeout=300)
    rows = _eval_rows(fs, f"{bucket}/copy/eval/eval.parquet")
    assert sorted(r["category"] for r in rows) == ["chair", "table"] and all(r["status"] == "ok" for r in rows)
    assert {r["checkpoint"] for r in rows} == {f"s3://{bucket}/copy/train/model"}
    assert _files(fs, f"{bucket}/run") == []  # nothing read from or written to the original

    # 4. the copy also resumes: nothing is built or rendered again, training continues from its step 2
    out = _run(["run", "-c", str(config), "--set", f"workdir=s3://{bucket}/copy", "--stages", "assets,render,train",
                "--set", "train.max_steps=3"], env, cwd, timeout=450)
    assert "2 assets to render" not in out and "0 assets to render, 2 already done" in out, out[-6000:]
    assert "resumed from" in out and "at step 2" in out and f"{bucket}/copy/train/ray/lrm" in out, out[-6000:]
    assert fs.cat_file(f"{bucket}/copy/train/model/training.json").startswith(b'{"step": 3'), out[-3000:]
    assert _files(fs, f"{bucket}/run") == []

    # Nothing of the workdir landed on local disk (the jobs ran in cwd; models were cached in tmp/cache).
    assert list(cwd.iterdir()) == [], list(cwd.rglob("*"))[:20]


def _eval_rows(fs, path: str) -> list[dict]:
    import pyarrow.parquet as pq

    with fs.open(path) as fh:
        return pq.read_table(fh).to_pylist()
