"""Failed items exit 1 after the summaries (``allow_failed`` accepts them); user errors are one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lrm_dist.config import load_config
from lrm_dist.eval.stage import EvalSummary
from lrm_dist.pipeline import exit_code, failed_items
from lrm_dist.render.stage import RenderSummary

REPO = Path(__file__).resolve().parents[2]


def test_failed_items_exit_1_and_name_the_stages(capsys):
    results = {"render": RenderSummary("r", "h", assets=3, done=2, failed=1), "eval": EvalSummary("e", "h", failed=2)}
    assert failed_items(results) == {"render": 1, "eval": 2}
    assert exit_code(load_config(None), results, "lrm-dist run") == 1
    assert "render 1, eval 2" in capsys.readouterr().err


def test_allow_failed_accepts_them(capsys):
    results = {"render": RenderSummary("r", "h", assets=3, done=2, failed=1)}
    assert exit_code(load_config(None, ["allow_failed=true"]), results, "x") == 0
    assert "accepted" in capsys.readouterr().err


def test_clean_runs_exit_0(capsys):
    results = {"render": RenderSummary("r", "h", assets=3, done=3), "train": object()}
    assert failed_items(results) == {}
    assert exit_code(load_config(None), results, "x") == 0
    assert capsys.readouterr().err == ""


def test_an_unwritable_workdir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    done = subprocess.run([sys.executable, "-m", "lrm_dist.cli", "render", "--set", f"workdir={blocker}/run"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert str(blocker) in done.stderr
