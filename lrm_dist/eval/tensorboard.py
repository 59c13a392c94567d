"""The evaluation and TensorBoard: eval metrics logged as scalars next to the training curves, and the
training loss curves read back for the report."""

from __future__ import annotations

from pathlib import Path

from lrm_dist.layout import TENSORBOARD_DIR
from lrm_dist.log import get_logger
from lrm_dist.storage import Storage

log = get_logger(__name__)

LOSS_PREFIX = "loss/"


def eval_scalars(summary: list[dict]) -> dict[str, float]:
    """The class means as ``eval/<metric>`` and each category's IoU as ``eval/iou/<category>`` (NaNs left out)."""
    values: dict[str, float] = {}
    mean = next((r for r in summary if r["kind"] == "class_mean"), None)
    if mean is not None:
        values.update({f"eval/{k}": mean[k] for k in ("iou", "iou_median", "chamfer_l1", "normal_consistency")})
        values.update({f"eval/fscore@{t:g}": f for t, f in zip(mean["fscore_thresholds"], mean["fscore"])})
    values.update({f"eval/iou/{r['category']}": r["iou"] for r in summary if r["kind"] == "category"})
    return {k: float(v) for k, v in values.items() if v is not None and v == v}


def eval_log_dir(prov: dict, out_dir: str) -> str:
    """The train run's TensorBoard folder when known, else ``<out_dir>/tensorboard`` (``layout().eval_tensorboard_dir``;
    a URL on object storage: the event file is written locally and uploaded)."""
    if prov["training"]["tensorboard_dir"]:
        return prov["training"]["tensorboard_dir"]
    storage = Storage(out_dir)
    return str(Path(storage.root) / TENSORBOARD_DIR) if storage.is_local else storage.url_of(TENSORBOARD_DIR)


def log_eval_scalars(summary: list[dict], prov: dict, out_dir: str) -> str | None:
    """Write the eval scalars at the model's training step (0 when unknown); returns the TensorBoard folder."""
    from lrm_dist.tensorboard import Board

    log_dir, values = eval_log_dir(prov, out_dir), eval_scalars(summary)
    if not values:
        return None
    board = Board(log_dir)
    board.scalars(values, prov["training"]["step"] or 0)
    board.close()
    return log_dir if board.writer is not None else None


def read_loss_curves(log_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every ``loss/*`` scalar of a TensorBoard folder as {tag: (steps, values)} (restarts purged as TensorBoard does)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    from lrm_dist.storage import fetch_tree, is_url

    if is_url(log_dir):  # a folder on object storage: read a local copy
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lrm-tensorboard-") as tmp:
            return read_loss_curves(fetch_tree(str(log_dir), tmp))
    acc = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})  # 0: keep every point
    acc.Reload()
    curves = {}
    for tag in sorted(t for t in acc.Tags()[SCALARS] if t.startswith(LOSS_PREFIX)):
        events = acc.Scalars(tag)
        curves[tag] = ([e.step for e in events], [e.value for e in events])
    return curves
