"""One writer per output folder: an advisory lock that a crashed job's death releases.

Two jobs writing one stage folder corrupt it (both resume from the same manifest and write the same
shards), so every stage that writes holds ``<folder>/.lock`` while it runs. The lock is ``flock`` on
an open file: the kernel drops it when the holder exits, however it exits, so a dead job's lock is
taken over by the next one without any clean-up. The file records the holder (pid, host, start
time, command) for the refusal message. Object-store folders (``s3://``...) cannot be locked this
way; they are written without a lock and a warning says so.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lrm_dist.errors import WorkdirBusy
from lrm_dist.log import get_logger

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig
    from lrm_dist.layout import RunLayout

log = get_logger(__name__)

LOCK_NAME = ".lock"
T = TypeVar("T")


def _is_url(folder: str) -> bool:
    return "://" in folder and not folder.startswith("file://")


@contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (created if needed) for the block; refuse if a live job holds it."""
    folder = str(folder)
    if _is_url(folder):
        log.warning("%s: %s is on object storage, which has no lock: run one job per workdir", what, folder)
        yield
        return
    path = Path(folder.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise WorkdirBusy(
                f"{what}: {path} is in use by another job ({holder}); wait for it to end or use another workdir"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def run_locked_stage(
    cfg: PipelineConfig, what: str, folder: Callable[[RunLayout], str | Path],
    work: Callable[[PipelineConfig, RunLayout], T],
) -> T:
    """A writing stage's entry: its storage options applied, its output folder (``folder(layout)``) locked
    for the run (a second job on the same folder is refused), then ``work(cfg, layout)``."""
    from lrm_dist.storage import configure_from

    configure_from(cfg)
    layout = cfg.layout()
    with folder_lock(folder(layout), what):
        return work(cfg, layout)
