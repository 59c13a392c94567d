"""DeepSpeed's op cache: where it is, and the CPU op that scripts/setup-env.sh builds ahead of any run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import ninja

from lrm_dist.train.deepspeed_ops import build_cpu_ops, default_extensions_dir, use_extensions_dir


def test_the_default_cache_is_per_user_and_per_version(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = Path(default_extensions_dir())
    assert folder.parent == tmp_path / "lrm-dist" / "torch_extensions"
    assert folder.name.startswith(f"py{sys.version_info.major}{sys.version_info.minor}-torch{version('torch')}"
                                  f"-deepspeed{version('deepspeed')}-")
    monkeypatch.setattr(sys, "prefix", sys.prefix + "-another-venv")
    assert Path(default_extensions_dir()).parent == folder.parent and Path(default_extensions_dir()) != folder
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_extensions_dir().startswith(os.path.expanduser("~/.cache/lrm-dist/torch_extensions/"))


def test_an_unwritable_cache_falls_back_to_the_temporary_folder(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    folder = Path(default_extensions_dir())
    assert folder.is_dir() and folder.is_relative_to(tmp_path / "tmp")
    assert folder.parent.name == "torch_extensions" and folder.name.startswith("py")


def test_a_configured_folder_wins_over_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "elsewhere")
    monkeypatch.setenv("PATH", os.environ["PATH"])  # restored afterwards (the call puts ninja's folder first)
    assert use_extensions_dir(str(tmp_path)) == str(tmp_path) == os.environ["TORCH_EXTENSIONS_DIR"]
    assert use_extensions_dir(None) == default_extensions_dir() == os.environ["TORCH_EXTENSIONS_DIR"]


def test_the_cpu_op_is_built_into_the_cache(monkeypatch):
    """Compiles once (about a minute on two cores) unless scripts/setup-env.sh already did; then it loads."""
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    monkeypatch.setenv("PATH", os.environ["PATH"])
    folder = build_cpu_ops()
    assert folder == default_extensions_dir()
    assert list(Path(folder).glob("deepspeed_shm_comm/*.so"))


def test_the_build_uses_the_environments_own_ninja(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", "/bin", ninja.BIN_DIR]))
    use_extensions_dir(str(tmp_path))
    assert shutil.which("ninja") == os.path.join(ninja.BIN_DIR, "ninja")
    assert os.environ["PATH"] == os.pathsep.join([ninja.BIN_DIR, "/usr/bin", "/bin"])
    use_extensions_dir(str(tmp_path))  # once first, it stays where it is
    assert os.environ["PATH"] == os.pathsep.join([ninja.BIN_DIR, "/usr/bin", "/bin"])


def test_a_run_without_the_venv_activated_reuses_the_setups_build():
    """scripts/setup-env.sh builds with the venv activated; `.venv/bin/lrm-dist run` starts without it: the same
    cache must load without a rebuild (another ninja on PATH took it for stale before)."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    others = [e for e in env["PATH"].split(os.pathsep) if e and e != ninja.BIN_DIR]
    build = [sys.executable, "-m", "lrm_dist.train.deepspeed_ops"]
    subprocess.run(build, env={**env, "PATH": os.pathsep.join([ninja.BIN_DIR] + others)}, check=True,
                   capture_output=True)
    library = next(Path(default_extensions_dir()).glob("deepspeed_shm_comm/*.so"))
    built = library.stat().st_mtime_ns
    subprocess.run(build, env={**env, "PATH": os.pathsep.join(others)}, check=True, capture_output=True)
    assert library.stat().st_mtime_ns == built
