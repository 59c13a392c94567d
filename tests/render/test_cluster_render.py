"""The render stage end to end on a real 3-node Ray cluster with real Blender: shards, failed rows,
resume after a killed driver, settings changes, and a worker node lost mid-job."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml
from tests.render.conftest import NODE_ARGS, non_loopback_listeners, render_actor_args

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.manifest import write_asset_manifest
from lrm_dist.config import PipelineConfig
from lrm_dist.render import render_assets
from lrm_dist.shards import decode_sample, iter_render_samples, read_ray_dataset, read_render_manifest, shard_urls
from lrm_dist.shards.store import ShardStore
from lrm_dist.shards.verify import verify_render_dir

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
pytest.importorskip("bpy")


def _config(workdir, per_category=1, categories=None, **render) -> dict:
    source = {"kind": "procedural", "per_category": per_category}
    if categories:
        source["categories"] = categories
    return {
        "workdir": str(workdir),
        "assets": {"sources": [source]},
        "render": {"views": 4, "resolution": 64, "samples": 4, "denoise": False, "retries": 1, "timeout_s": 120,
                   "actors": render_actor_args(), **render},
        "shards": {"max_samples": 2},
    }


def _build(data: dict) -> PipelineConfig:
    cfg = PipelineConfig.model_validate(data)
    build_assets(cfg)
    return cfg


def _add_hostile_rows(cfg: PipelineConfig, folder) -> dict[str, str]:
    """Append asset rows whose files are corrupt, empty, a .blend, external-texture glb and a '..' path."""
    folder.mkdir()
    (folder / "corrupt.glb").write_bytes(b"glTF\x02\x00\x00\x00" + os.urandom(200))
    (folder / "empty.obj").write_bytes(b"")
    (folder / "evil.blend").write_bytes(b"BLENDER-v500 REND" + b"\0" * 100)
    (folder / "big.glb").write_bytes(b"glTF\x02\x00\x00\x00" + b"\0" * (2 << 20))  # over assets.max_file_mb (1 MB)
    good = next(r for r in read_asset_manifest(f"{cfg.stage_dir('assets')}/assets.parquet").to_pylist())
    (folder / "ext.gltf").write_text('{"asset": {"version": "2.0"}, "images": [{"uri": "http://evil.example/x.png"}]}')
    bad = {"corrupt": "corrupt.glb", "empty": "empty.obj", "evil": "evil.blend", "ext": "ext.gltf", "big": "big.glb",
           "dotdot": f"sub/../{good['uri'].rsplit('/', 1)[1]}"}
    path = f"{cfg.stage_dir('assets')}/assets.parquet"
    rows = read_asset_manifest(path).to_pylist()
    for asset_id, name in bad.items():
        rows.append({**good, "asset_id": f"bad-{asset_id}", "uri": str(folder / name)})
    write_asset_manifest(rows, path)
    return {f"bad-{k}": v for k, v in bad.items()}


def test_render_job_shards_failures_rerun_and_settings_change(cluster, tmp_path):
    import ray

    cfg = _build({**_config(tmp_path / "w"), "assets": {**_config(tmp_path / "w")["assets"], "max_file_mb": 1.0}})
    bad = _add_hostile_rows(cfg, tmp_path / "bad")
    first = render_assets(cfg)
    assert (first.done, first.failed, first.skipped) == (5, len(bad), 0), str(first)
    render_dir = cfg.stage_dir("render")
    where = verify_render_dir(render_dir)
    assert len(where) == 5 and len(set(where.values())) == 3  # 2 + 2 + 1 samples
    rows = {r["asset_id"]: r for r in read_render_manifest(render_dir).to_pylist()}
    for asset_id in bad:
        assert rows[asset_id]["status"] == "failed" and rows[asset_id]["reason"], rows[asset_id]
    assert "'..'" in rows["bad-dotdot"]["reason"] and "outside the asset folder" in rows["bad-ext"]["reason"]
    assert "unsupported format" in rows["bad-evil"]["reason"] and "empty" in rows["bad-empty"]["reason"]
    assert "over the 1 MB limit" in rows["bad-big"]["reason"]  # the render stage gets assets.max_file_mb

    samples = list(iter_render_samples(render_dir))
    assert sorted(s["asset_id"] for s in samples) == sorted(where)
    for s in samples:
        assert s["rgba"].shape == (4, 64, 64, 4) and s["depth"].shape == (4, 64, 64) and s["c2w"].shape == (4, 4, 4)
        assert s["meta"]["settings_hash"] == first.settings_hash and (s["rgba"][..., 3] > 0).mean() > 0.05
    ds_rows = read_ray_dataset(shard_urls(render_dir)).take_all()
    decoded = [decode_sample(r) for r in ds_rows]
    assert sorted(d["asset_id"] for d in decoded) == sorted(where)
    assert all(d["normal"].shape == (4, 64, 64, 3) for d in decoded)
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
    assert non_loopback_listeners() == []

    again = render_assets(cfg)  # nothing left to render but the failures
    assert (again.done, again.skipped, again.failed) == (0, 5, len(bad))
    assert verify_render_dir(render_dir) == where

    changed = PipelineConfig.model_validate({**cfg.model_dump(), "render": {**cfg.render.model_dump(), "views": 2}})
    third = render_assets(changed)
    assert third.done == 5 and third.settings_hash != first.settings_hash
    final = verify_render_dir(render_dir)
    assert sorted(final) == sorted(where) and not set(final.values()) & set(where.values())  # old shards gone
    assert {r["settings_hash"] for r in read_render_manifest(render_dir).to_pylist() if r["status"] == "done"} == {
        third.settings_hash}


def test_killed_driver_then_rerun_renders_only_what_is_missing(cluster, tmp_path):
    data = _config(tmp_path / "w", per_category=1)
    data["shards"] = {"max_samples": 1}
    cfg = _build(data)
    config_path = tmp_path / "render.yaml"
    config_path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "LRM_DIST_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "lrm_dist.cli", "render", str(config_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "w" / "render" / "shards"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            if shards.is_dir() and len([p for p in shards.iterdir() if p.suffix == ".tar"]) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the job ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = ShardStore(cfg.stage_dir("render"))
    report = before.open()  # what survived the kill (shards renamed before the manifest caught up are adopted)
    survived = {a for a, r in before.rows.items() if r["status"] == "done"}
    assert 2 <= len(survived) < 5, (survived, report)
    rerun = render_assets(cfg)
    assert rerun.skipped == len(survived) and rerun.done == 5 - len(survived) and rerun.failed == 0
    assert len(verify_render_dir(cfg.stage_dir("render"))) == 5


def test_losing_a_worker_node_mid_job_loses_and_duplicates_nothing(cluster, tmp_path, monkeypatch):
    cfg = _build(_config(tmp_path / "w", per_category=2, categories=["chair", "table", "sofa", "bed"]))
    first_commit = threading.Event()
    real_add = ShardStore.add

    def add(self, *args, **kwargs):
        first_commit.set()
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(ShardStore, "add", add)
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(summary=render_assets(cfg)), daemon=True)
    job.start()
    assert first_commit.wait(150), "no asset finished"
    victim = next(iter(cluster.worker_nodes))
    cluster.remove_node(victim, allow_graceful=False)
    job.join(200)
    assert not job.is_alive(), "the job did not finish after losing a node"
    try:
        summary = result["summary"]
        assert summary.done == 8 and summary.failed == 0 and summary.replaced_actors >= 1, str(summary)
        assert len(verify_render_dir(cfg.stage_dir("render"))) == 8
    finally:
        cluster.add_node(**NODE_ARGS)
        cluster.wait_for_nodes()
