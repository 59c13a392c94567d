"""The render stage's needs (bpy, Blender 5, a GPU for a GPU device) fail at once, as one line with the fix."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.render.conftest import render_actor_args

from lrm_dist.render.config import RenderConfig
from lrm_dist.render.preflight import RenderSetupError, check_blender, check_driver

REPO = Path(__file__).resolve().parents[2]
HERE = "" if sys.version_info[:2] == (3, 11) else f"; this is Python {sys.version_info[0]}.{sys.version_info[1]}"
HINT = f"install it with pip install 'lrm-dist[render]' (bpy 5.0.1, which needs Python 3.11{HERE})"


def test_driver_without_bpy_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bpy" else real(name, *a))
    with pytest.raises(RenderSetupError) as err:
        check_driver()
    assert str(err.value) == f"rendering needs bpy (Blender as a Python module), which is not installed: {HINT}"


def test_driver_with_another_blender_is_refused(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "4.2.3")
    with pytest.raises(RenderSetupError, match=r"^Blender 4\.2\.3 is installed \(bpy\), but the render code needs "
                                               r"Blender 5\.x: install it with pip install 'lrm-dist\[render\]'"):
        check_driver()


@pytest.mark.integration
def test_actor_check_refuses_a_gpu_device_blender_cannot_see():
    bpy = pytest.importorskip("bpy")
    from lrm_dist.render.scene import pick_cycles_device

    if pick_cycles_device(bpy, "auto") != "CPU":
        pytest.skip("Blender sees a GPU here")
    with pytest.raises(RenderSetupError, match=r"^render\.cycles_device=CUDA but Blender sees no CUDA device on .+: "
                                               r"give the render actors a GPU .* or set render\.cycles_device=auto"):
        check_blender(RenderConfig(cycles_device="CUDA"))
    assert check_blender(RenderConfig(cycles_device="CPU")) == bpy.app.version_string


@pytest.mark.integration
def test_render_without_importable_bpy_fails_in_seconds(tmp_path):
    # A bpy that shadows the installed one (PYTHONPATH comes first on sys.path), for the driver and the
    # Ray workers it starts: the driver finds a bpy, the actor cannot import it.
    (tmp_path / "shadow" / "bpy").mkdir(parents=True)
    (tmp_path / "shadow" / "bpy" / "__init__.py").write_text('raise ImportError("No module named \'bpy\' (test)")\n')
    sources = "assets.sources=[{kind: procedural, per_category: 1, categories: [chair]}]"
    overrides = [f"workdir={tmp_path / 'run'}", sources, "render.actors.count=1", "render.actors.start_timeout_s=600",
                 "ray.num_cpus=2"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lrm_dist.cli", "run", "--stages", "assets,render",
                           *(a for o in overrides for a in ("--set", o))],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lrm-dist run: error: no render actor can start: bpy (Blender as a Python module) "
                           "cannot be imported on "), last
    assert last.endswith(f"(ImportError: No module named 'bpy' (test)): {HINT}"), last
    assert elapsed < 120, elapsed  # Ray's start and the assets stage; never start_timeout_s


class BrokenInitWorker:
    """A render actor whose construction fails, as on a node without the package."""

    def __init__(self, cfg, settings_hash, threads, encode, max_file_mb, shards):
        raise ModuleNotFoundError("No module named 'lrm_dist' (test)")

    def ready(self):
        return {}


class NoGpuWorker:
    """A render actor whose preflight fails, as ``RenderWorker.ready`` does without the GPU it was told to use."""

    def __init__(self, cfg, settings_hash, threads, encode, max_file_mb, shards):
        pass

    def ready(self):
        raise RenderSetupError("render.cycles_device=CUDA but Blender sees no CUDA device on node-1: give the actors a GPU")


@pytest.mark.integration
@pytest.mark.parametrize(("worker", "reason"), [
    (BrokenInitWorker, "its __init__ raised ModuleNotFoundError: No module named 'lrm_dist' (test)"),
    (NoGpuWorker, "render.cycles_device=CUDA but Blender sees no CUDA device on node-1: give the actors a GPU"),
])
def test_an_actor_that_cannot_start_fails_the_fleet_at_once(cluster, worker, reason):
    import ray.cloudpickle

    from lrm_dist.render.fanout import RenderFleet

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    cfg = RenderConfig.model_validate({"actors": {**render_actor_args(), "start_timeout_s": 600}})
    fleet = RenderFleet(cfg, "h", worker_cls=worker)
    start = time.monotonic()
    with pytest.raises(RenderSetupError) as err:
        list(fleet.run([{"asset_id": f"a{i}"} for i in range(3)]))
    assert str(err.value) == f"no render actor can start: {reason}"
    assert time.monotonic() - start < 60 and fleet.slots == []
