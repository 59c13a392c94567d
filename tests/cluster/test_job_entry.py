"""The job scripts' shared runner: argument handling, lazy stage lookup, clear errors, script start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from jobs import _entry  # noqa: E402

JOBS = ["assets", "render", "train", "eval", "pipeline"]


def test_every_stage_names_an_existing_function():
    from lrm_dist import pipeline

    for stage, (module, _) in pipeline.STAGES.items():
        assert (REPO / Path(*module.split("."))).is_dir(), stage
    assert pipeline.stage_function("assets").__name__ == "build_assets"


def test_unknown_or_missing_stage_is_a_clear_error(monkeypatch):
    from lrm_dist import pipeline

    with pytest.raises(ValueError, match="stage 'paint' is unknown"):
        pipeline.stage_function("paint")
    monkeypatch.setitem(pipeline.STAGES, "render", ("lrm_dist.assets", "no_such_function"))
    with pytest.raises(ValueError, match=r"lrm_dist.assets.no_such_function does not exist"):
        pipeline.stage_function("render")


def test_main_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    assert _entry.main(["assets"], "jobs/assets.py", "x", [str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("workdir: /tmp/x\n")
    assert _entry.main(["assets"], "jobs/assets.py", "x", [str(cfg), "--set", "render.views=0"]) == 2
    assert "render.views" in capsys.readouterr().err
    assert _entry.main(None, "jobs/pipeline.py", "x", [str(cfg), "--stages", "assets,paint"]) == 2
    assert "stage 'paint' is unknown" in capsys.readouterr().err


def test_config_is_required_in_either_form(capsys):
    with pytest.raises(SystemExit) as done:
        _entry.main(["render"], "jobs/render.py", "x", ["--set", "render.views=2"])
    assert done.value.code == 2 and "a pipeline config is required: CONFIG or -c CONFIG" in capsys.readouterr().err
    parser = _entry.build_parser("jobs/render.py", "x")
    assert parser.parse_args(["-c", "p.yaml"]).config == parser.parse_args(["p.yaml"]).config == "p.yaml"


@pytest.mark.parametrize("job", JOBS)
def test_scripts_start_from_any_directory(job, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"jobs/{job}.py" in proc.stdout and "--set" in proc.stdout
