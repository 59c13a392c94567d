"""Per-process scratch folders in the system temp folder, and the removal of those whose process died.

A process that is killed (an actor recycled or timed out, a driver that crashed) cannot delete its own
scratch folder. Each folder is named ``<prefix><pid>-<random>``, so the next process of the same kind on
the node removes the folders of dead processes before it makes its own (the Blender render workers'
``lrm-render-`` folders, the shard store's ``lrm-shard-`` spools).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def process_folder(prefix: str) -> Path:
    """A new scratch folder of this process: ``<tmp>/<prefix><pid>-<random>``."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def remove_orphan_folders(prefix: str, root: str | None = None) -> list[Path]:
    """Delete the ``prefix`` scratch folders of dead processes under ``root`` (the temp folder); returns them."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
