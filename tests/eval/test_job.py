"""The evaluation job end to end on a two-node local Ray cluster: tiny model, procedural assets, resume, report."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lrm_dist.config import load_config
from lrm_dist.eval.metrics import WORST_DISTANCE
from lrm_dist.schema import EVAL_SCHEMA, EVAL_SUMMARY_SCHEMA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_node_cluster():
    """A head and one worker node (2 logical CPUs each) on 127.0.0.1; the driver connects to it."""
    import ray
    import ray._private.ray_constants as ray_constants
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # Without this Ray rewrites the loopback GCS address to the host's routable IP, where nothing listens.
    saved, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _median_density(checkpoint, workdir) -> float:
    """A density iso-level that cuts the tiny random model's field of one held-out input in half."""
    from lrm_dist.eval.reconstruct import prepare_input
    from lrm_dist.model.pretrained import from_pretrained
    from lrm_dist.reconstruct.extract import density_grid
    from lrm_dist.shards import iter_render_samples

    sample = next(iter_render_samples(str(workdir / "render")))
    model = from_pretrained(checkpoint)
    p = prepare_input(sample["rgba"][0], sample["c2w"], sample["intrinsics"], model.source_size)
    with torch.no_grad():
        planes = model.forward_planes(torch.from_numpy(p.image)[None], torch.from_numpy(p.camera)[None])
        grid = density_grid(model.synthesizer, planes[0], 24)
    return float(grid.median())


@pytest.mark.timeout(300)
def test_eval_job_on_two_nodes_resumes_and_reports(two_node_cluster, eval_workdir, tiny_checkpoint, caplog):
    from lrm_dist.eval import evaluate

    threshold = _median_density(tiny_checkpoint, eval_workdir)
    trained_on = "scoring assets the model was trained on"
    cfg = load_config(None, [  # four synthetic assets: score them all (a set the model never trained on)
        "eval.split=all", "shards.holdout_fraction=0.5",
        f"workdir={eval_workdir}", f"eval.checkpoint={tiny_checkpoint}", "eval.mesh_resolution=24",
        f"eval.density_threshold={threshold}", "eval.n_points=4000", "eval.actors.count=2",
        "eval.actors.batch_size=2", "eval.flush_every=1", "eval.report.image_size=64",
    ])
    first = evaluate(cfg)
    assert (first.evaluated, first.skipped, first.failed) == (4, 0, 0)

    out = eval_workdir / "eval"
    table = pq.read_table(out / "eval.parquet")
    assert table.schema.equals(EVAL_SCHEMA, check_metadata=False)
    rows = {r["asset_id"]: r for r in table.to_pylist()}
    assert len(rows) == 4 and {r["category"] for r in rows.values()} == {"chair", "table"}
    for r in rows.values():
        assert r["status"] == "ok" and r["eval_hash"] == first.eval_hash
        assert (out / r["input_file"]).is_file()
        if r["empty"]:
            assert r["iou"] == 0.0 and r["chamfer_l1"] == WORST_DISTANCE and r["mesh_file"] is None
        else:
            assert 0.0 <= r["iou"] <= 1.0 and 0.0 < r["chamfer_l1"] < WORST_DISTANCE
            assert (out / r["mesh_file"]).is_file() and r["n_faces"] > 0
        assert len(r["fscore"]) == 3 and all(0.0 <= f <= 1.0 for f in r["fscore"])
    assert any(not r["empty"] for r in rows.values())
    assert not list((out / "parts").glob("*.parquet"))  # folded into eval.parquet

    summary = pq.read_table(out / "summary.parquet")
    assert summary.schema.equals(EVAL_SUMMARY_SCHEMA, check_metadata=False)
    by_cat = {(r["kind"], r["category"]): r for r in summary.to_pylist()}
    chairs = [r for r in rows.values() if r["category"] == "chair"]
    assert by_cat[("category", "chair")]["iou"] == pytest.approx(np.mean([r["iou"] for r in chairs]))
    assert by_cat[("all", "*")]["n_assets"] == 4

    report = eval_workdir / "eval" / "report"
    for name in ("index.html", "summary.md", "summary.parquet", "contact_sheet.png", "plots/iou.png"):
        assert (report / name).is_file(), name
    assert "| chair |" in (report / "summary.md").read_text()

    # Resume: nothing left to do with the same checkpoint and settings (the split's fraction does not count for "all").
    cfg.shards.holdout_fraction = 0.0
    again = evaluate(cfg)
    assert (again.evaluated, again.skipped) == (0, 4)
    assert not [r for r in caplog.records if trained_on in r.getMessage()]  # "all" is never the training split
    assert pq.read_table(out / "eval.parquet").to_pylist() == table.to_pylist()

    # A changed hashed setting evaluates everything again (here limited to 2 assets). The render manifest
    # now claims a re-render of the first asset that its shard does not hold: a failed row, not a gap.
    from lrm_dist.shards.manifest import load_rows, save_rows
    from lrm_dist.storage import Storage

    render = Storage(str(eval_workdir / "render"))
    manifest = load_rows(render)
    first_id = sorted(manifest)[0]
    manifest[first_id]["settings_hash"] = "re-rendered"
    save_rows(render, manifest)
    changed = load_config(None, [
        "shards.holdout_fraction=0", f"workdir={eval_workdir}", f"eval.checkpoint={tiny_checkpoint}", "eval.mesh_resolution=24",
        f"eval.density_threshold={threshold}", "eval.n_points=3000", "eval.limit=2", "eval.report.enabled=false",
    ])
    third = evaluate(changed)
    assert (third.evaluated, third.skipped, third.failed) == (2, 0, 1) and third.eval_hash != first.eval_hash
    assert [r.levelname for r in caplog.records if trained_on in r.getMessage()] == ["WARNING"]  # held_out, no split
    row = {r["asset_id"]: r for r in pq.read_table(out / "eval.parquet").to_pylist()}[first_id]
    assert row["status"] == "failed" and "not found" in row["reason"] and row["eval_hash"] == third.eval_hash



def _rewrite_shard(path, replace: dict[str, bytes], cut_in: str | None = None) -> None:
    """Rewrite a shard tar with members replaced (full names); ``cut_in``: cut the file in that member's data."""
    import io
    import tarfile

    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(replace.get(name, data))
            tar.addfile(info, io.BytesIO(replace.get(name, data)))
    data = buf.getvalue()
    if cut_in:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.getmember(cut_in)
        data = data[: member.offset_data + member.size // 2]
    path.write_bytes(data)


@pytest.mark.timeout(300)
def test_a_bomb_view_and_a_truncated_shard_fail_their_assets_only(two_node_cluster, eval_workdir, tiny_checkpoint):
    from lrm_dist.eval import evaluate
    from lrm_dist.shards.manifest import load_rows
    from lrm_dist.storage import Storage
    from tests.hostile_images import png_bomb

    by_shard: dict[str, list[str]] = {}
    for asset_id, row in sorted(load_rows(Storage(str(eval_workdir / "render"))).items()):
        by_shard.setdefault(row["shard"], []).append(asset_id)
    (first, (ok_1, bomb)), (second, (ok_2, cut)) = sorted(by_shard.items())
    shards = eval_workdir / "render" / "shards"
    _rewrite_shard(shards / first, {f"{bomb}.000.rgba.png": png_bomb(20000, 20000)})
    _rewrite_shard(shards / second, {}, cut_in=f"{cut}.000.rgba.png")
    cfg = load_config(None, [
        "shards.holdout_fraction=0", f"workdir={eval_workdir}", f"eval.checkpoint={tiny_checkpoint}",
        "eval.mesh_resolution=16", "eval.n_points=1000", "eval.report.enabled=false",
    ])
    summary = evaluate(cfg)
    assert (summary.evaluated, summary.failed) == (4, 2)
    rows = {r["asset_id"]: r for r in pq.read_table(eval_workdir / "eval" / "eval.parquet").to_pylist()}
    assert rows[ok_1]["status"] == rows[ok_2]["status"] == "ok"
    assert rows[bomb]["status"] == "failed" and rows[bomb]["reason"].startswith(
        f"bad input view: asset {bomb} member 000.rgba.png: image too large to decode safely")
    assert rows[bomb]["input_file"] is None  # the bomb is not copied into the report's inputs
    assert rows[cut]["status"] == "failed"
    assert rows[cut]["reason"] == f"shard {second} is unreadable after 1 samples (ReadError: unexpected end of data)"
