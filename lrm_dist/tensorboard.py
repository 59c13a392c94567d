"""TensorBoard output of rank 0: scalars and image grids of rendered vs. target views."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from lrm_dist.log import get_logger

log = get_logger(__name__)


def view_grid(target: torch.Tensor, rgb: torch.Tensor, opacity: torch.Tensor, alpha: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """One row per view: target | rendered | target alpha | rendered opacity -> [3, rows, cols] in [0, 1].

    target/rgb: [V, 3, h, w]; alpha/opacity: [V, 1, h, w].
    """
    v, _, h, w = target.shape
    tiles = [target, rgb, alpha.expand(-1, 3, -1, -1), opacity.expand(-1, 3, -1, -1)]
    grid = torch.ones(3, v * (h + pad) + pad, len(tiles) * (w + pad) + pad)
    for row in range(v):
        for col, tile in enumerate(tiles):
            y, x = pad + row * (h + pad), pad + col * (w + pad)
            grid[:, y : y + h, x : x + w] = tile[row].detach().float().cpu().clamp(0, 1)
    return grid


class Board:
    """A SummaryWriter on rank 0 and a no-op elsewhere (or when tensorboard is missing).

    An object-store ``log_dir`` (``s3://...``) is written in a local temporary folder whose event files
    are uploaded every ``sync_every_s`` seconds and on ``close`` (files already there are kept: a resumed
    run or the evaluation adds its own event files beside them)."""

    def __init__(self, log_dir: str | Path | None, purge_step: int | None = None, sync_every_s: float = 60.0):
        from lrm_dist.storage import is_url

        self.writer, self.remote, self.local = None, None, None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed on this node
            log.warning("tensorboard is not installed: no TensorBoard logs")
            return
        if is_url(log_dir):
            import tempfile

            self.remote, self.local = str(log_dir), tempfile.mkdtemp(prefix="lrm-tensorboard-")
            log_dir = self.local
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        self.sync_every_s, self._synced = sync_every_s, time.monotonic()

    def _sync(self, force: bool = False) -> None:
        if self.remote is None or (not force and time.monotonic() - self._synced < self.sync_every_s):
            return
        from lrm_dist.storage import upload_folder

        self.writer.flush()
        try:
            upload_folder(self.local, self.remote)
        except OSError as exc:  # a storage hiccup must not stop training: the next sync uploads again
            log.warning("tensorboard: cannot upload to %s (%s)", self.remote, exc)
        self._synced = time.monotonic()

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)
            self._sync()

    def image(self, tag: str, image: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step)
            self._sync()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            if self.remote is not None:
                import shutil

                self._sync(force=True)
                shutil.rmtree(self.local, ignore_errors=True)
