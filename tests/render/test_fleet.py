"""The render fleet's fault handling on the 3-node cluster, with a stand-in worker (no Blender):
timeouts, crashes, bad inputs, retries and recycling, each asset ending exactly once."""

import json
import os
import sys
import time

import pytest
import ray.cloudpickle
from tests.render.conftest import render_actor_args

from lrm_dist.render.config import RenderConfig
from lrm_dist.render.fanout import RenderFleet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules


class StandInWorker:
    """Behaves as the asset's ``behaviour`` says; marker files make 'once' behaviours happen once."""

    def __init__(self, cfg, settings_hash, threads, encode, max_file_mb, shards):
        self.pid, self.max_file_mb = os.getpid(), max_file_mb

    def ready(self):
        return {"pid": self.pid}

    def render(self, record, attempt):
        how = record["behaviour"]
        status = {"asset_id": record["asset_id"], "ok": False, "retryable": False, "reason": None, "pid": self.pid}
        if how == "hang_once" and attempt == 1:
            time.sleep(600)
        if how == "crash_always" or (how == "crash_once" and attempt == 1):
            os._exit(1)
        if how == "bad":
            status["reason"] = "x.glb: Blender cannot import it"
            return status, None
        if how == "flaky" and attempt < 3:
            status.update(retryable=True, reason="RuntimeError: flaky")
            return status, None
        status.update(ok=True, seconds=0.01, n_views=1)
        meta = {"pid": self.pid, "max_file_mb": self.max_file_mb}
        return status, {f"{record['asset_id']}.meta.json": json.dumps(meta).encode()}


def test_faults_end_each_asset_once(cluster):
    actors = {**render_actor_args(), "recycle_after": 3}
    cfg = RenderConfig.model_validate({"timeout_s": 4, "retries": 2, "actors": actors})
    behaviours = ["ok"] * 6 + ["hang_once", "crash_once", "crash_always", "bad", "flaky"]
    records = [{"asset_id": f"a{i}", "behaviour": b} for i, b in enumerate(behaviours)]
    fleet = RenderFleet(cfg, "h", worker_cls=StandInWorker, max_file_mb=7.5)  # assets.max_file_mb reaches the actors
    start = time.monotonic()
    outcomes = list(fleet.run(records))
    elapsed = time.monotonic() - start
    by_id = {o.asset_id: o for o in outcomes}
    assert len(outcomes) == len(records) == len(by_id)
    for i, b in enumerate(behaviours):
        o = by_id[f"a{i}"]
        if b in ("ok", "hang_once", "crash_once", "flaky"):
            assert o.ok and o.members, (b, o)
            assert json.loads(o.members[f"a{i}.meta.json"])["max_file_mb"] == 7.5
        expected_attempts = {"ok": 1, "hang_once": 2, "crash_once": 2, "flaky": 3, "crash_always": 3, "bad": 1}[b]
        assert o.attempts == expected_attempts, (b, o)
    assert not by_id["a8"].ok and "actor died" in by_id["a8"].reason
    assert not by_id["a9"].ok and "cannot import" in by_id["a9"].reason
    # replaced: 1 hang + 1 + 3 crashes, plus recycling every 3 assets
    assert fleet.replaced >= 5
    pids = {json.loads(o.members[f"{o.asset_id}.meta.json"])["pid"] for o in outcomes if o.ok}
    assert len(pids) >= 4  # recycled and replaced actors are fresh processes
    assert elapsed < 90
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
