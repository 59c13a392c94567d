"""One writer per output folder: a live holder refuses a second job, a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrm_dist.errors import WorkdirBusy
from lrm_dist.locks import LOCK_NAME, folder_lock

REPO = Path(__file__).resolve().parents[1]

_HOLD = """
import sys, time
from lrm_dist.locks import folder_lock
with folder_lock(sys.argv[1], "holder"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of ``tmp_path/render`` until the test kills it (by its PID)."""
    folder = tmp_path / "render"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_live_holder_refuses_a_second_job_naming_it(holder):
    folder, proc = holder
    with pytest.raises(WorkdirBusy) as err:
        with folder_lock(folder, "render"):
            pass
    message = str(err.value)
    assert "\n" not in message and str(folder) in message and f"pid {proc.pid}" in message


def test_a_killed_holder_lock_is_taken_over(holder):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with folder_lock(folder, "render"):
        assert f"pid {os.getpid()} " in (folder / LOCK_NAME).read_text()


def test_sequential_jobs_reuse_the_lock(tmp_path):
    for _ in range(2):
        with folder_lock(tmp_path / "x", "eval"):
            pass
    with folder_lock(tmp_path / "x", "eval"), folder_lock(tmp_path / "y", "train export"):
        pass


def test_the_cli_refuses_a_render_of_a_busy_workdir_in_one_line(holder):
    folder, _ = holder
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lrm_dist.cli", "render", "--set", f"workdir={folder.parent}"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2, done.stderr
    err = [line for line in done.stderr.splitlines() if "error" in line]
    assert err == [err[0]] and "in use by another job" in err[0] and "Traceback" not in done.stderr
    assert time.perf_counter() - t0 < 60


def test_a_locked_stage_runs_its_work_holding_its_folder(tmp_path, holder):
    """``run_locked_stage`` passes the job's layout to the work and holds the stage folder meanwhile; a folder
    that another job holds refuses it before any work runs."""
    from lrm_dist.config import load_config
    from lrm_dist.locks import run_locked_stage

    cfg = load_config(None, [f"workdir={tmp_path / 'run'}"])
    seen = []

    def work(cfg_, layout):
        seen.append(layout.eval_dir)
        return f"pid {os.getpid()} " in (Path(layout.eval_dir) / LOCK_NAME).read_text()

    assert run_locked_stage(cfg, "eval", lambda layout: layout.eval_dir, work) is True
    assert seen == [cfg.layout().eval_dir]
    busy, _ = holder  # tmp_path/render, held by another process
    with pytest.raises(WorkdirBusy):
        run_locked_stage(load_config(None, [f"workdir={tmp_path}"]), "render", lambda layout: busy, work)
    assert len(seen) == 1
