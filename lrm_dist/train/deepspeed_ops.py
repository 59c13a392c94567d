"""DeepSpeed's JIT-compiled ops: one cache per user, versions and environment; the CPU op built ahead of a run.

On CPU, DeepSpeed compiles its shared-memory all-reduce (``ShareMemCommBuilder``) the first time a process
group starts: about 70 s on two cores. ``scripts/setup-env.sh`` builds it into the cache once, so no run
pays for it; ``train.torch_extensions_dir`` points a run elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from importlib.metadata import version


def default_extensions_dir() -> str:
    """``$XDG_CACHE_HOME`` (else ``~/.cache``)/lrm-dist/torch_extensions/<python, torch and DeepSpeed versions,
    environment>: a local folder on every node, never shared by different builds (created here; where the home
    cannot be written, the same under the temporary folder)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # the environment's path too: a build names its include paths, so two venvs sharing one folder rebuild in turn
    prefix = hashlib.sha1(sys.prefix.encode()).hexdigest()[:8]
    tag = f"py{sys.version_info.major}{sys.version_info.minor}-torch{version('torch')}-deepspeed{version('deepspeed')}-{prefix}"
    folder = os.path.join(base, "lrm-dist", "torch_extensions", tag)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        folder = os.path.join(tempfile.gettempdir(), f"lrm-dist-{os.getuid()}", "torch_extensions", tag)
        os.makedirs(folder, exist_ok=True)
    return folder


def use_extensions_dir(path: str | None) -> str:
    """Point torch's extension loader (and so DeepSpeed) at ``path`` (None: the default cache), with the
    environment's own ninja to build there; returns the folder."""
    _put_own_ninja_first()
    os.environ["TORCH_EXTENSIONS_DIR"] = path or default_extensions_dir()
    return os.environ["TORCH_EXTENSIONS_DIR"]


def _put_own_ninja_first() -> None:
    """Put the ``ninja`` package's binary (a DeepSpeed dependency) first on PATH. torch runs whichever ninja
    PATH finds, and another ninja version takes a build for stale (its log hashes commands differently): the
    set-up builds with the venv activated, ``.venv/bin/lrm-dist run`` starts without it and would rebuild
    the op with the system's ninja (about 35 s at the start of the demo's training), or find none."""
    try:
        from ninja import BIN_DIR
    except ImportError:  # torch then needs a ninja on PATH, as before
        return
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if entries[0] != BIN_DIR:
        os.environ["PATH"] = os.pathsep.join([BIN_DIR] + [e for e in entries if e and e != BIN_DIR])


def build_cpu_ops(path: str | None = None) -> str | None:
    """Compile (or find compiled) DeepSpeed's CPU shared-memory all-reduce into ``path`` (None: the default
    cache); returns the folder, or None where DeepSpeed has no such op for this machine."""
    folder = use_extensions_dir(path)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None or not builder.is_compatible():
        return None
    builder.load(verbose=False)
    return folder


if __name__ == "__main__":  # scripts/setup-env.sh
    built = build_cpu_ops(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"DeepSpeed CPU op ready in {built}" if built else "DeepSpeed has no CPU shared-memory op for this machine")
