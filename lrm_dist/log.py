"""The project's one logger and progress bar, so every stage reports the same way."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_ROOT = "lrm_dist"


def get_logger(name: str) -> logging.Logger:
    """Return a child of the ``lrm_dist`` logger (configured once, level from LRM_DIST_LOG_LEVEL)."""
    root = logging.getLogger(_ROOT)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("LRM_DIST_LOG_LEVEL", "INFO").upper())
        root.propagate = False
    return root.getChild(name.removeprefix(_ROOT + ".")) if name != _ROOT else root


# Ray-internal loggers that repeat harmless warnings in a healthy run: Ray Train's placement-group
# cleaner polls the State API, which a local Ray without a dashboard does not serve, and warns every
# few seconds ("State API may be temporarily unavailable", "Found multiple active Ray instances").
_NOISY_RAY_LOGGERS = (
    "ray.train.v2._internal.execution.controller.placement_group_cleaner",
    "ray.util.state.api",
    "ray._private.utils",
)


def verbose() -> bool:
    """Whether Ray's INFO chatter and known-harmless warnings stay on (LRM_DIST_VERBOSE=1, ``lrm-dist --verbose``)."""
    return os.environ.get("LRM_DIST_VERBOSE", "0") == "1"


def quiet_ray_driver() -> None:
    """This process's share of the quiet console, unless verbose: Ray Data's INFO lines (its executor's start
    and finish, a per-operator progress report every few seconds) and Ray's note that token authentication
    is on. Warnings and errors stay. ``init_ray`` calls it; the eval and train stages show their own progress."""
    if verbose():
        return
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # read where ray.data is first imported (workers too)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # where it already is
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)


# Worker lines Ray prints at error level in a healthy run: Ray Train's controller starts its PreemptionWatcher actor
# with restarts and its arguments in the object store, and the core worker says so on every run.
_HARMLESS_WORKER_LINES = (
    re.compile(r"core_worker\.cc:\d+: Actor with class name: '\w+' and ID: '\w+' has constructor arguments in the "
               r"object store and max_restarts > 0"),
)
_RAY_PRINT_HANDLER = "ray_print_logs"  # the name Ray registers its printer of workers' lines under


def quiet_worker_lines() -> None:
    """Keep Ray's known-harmless worker lines (``_HARMLESS_WORKER_LINES``) off the driver's console, unless verbose.

    Ray has no public filter for what ``log_to_driver`` prints, so its printer is wrapped where Ray registers it (a
    Ray without that printer is left as it is). ``init_ray`` calls it after connecting; a second call changes nothing.
    """
    if verbose():
        return
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:
        return
    for name, handler in list(getattr(dispatcher, "handlers", [])):
        if name == _RAY_PRINT_HANDLER and not getattr(handler, "lrm_dist_filtered", False):
            dispatcher.remove_handler(name)
            dispatcher.add_handler(name, _without_harmless_lines(handler))


def _without_harmless_lines(handler: Callable[[dict], None]) -> Callable[[dict], None]:
    def printer(data: dict) -> None:
        lines = [line for line in data.get("lines", []) if not any(p.search(line) for p in _HARMLESS_WORKER_LINES)]
        if lines:
            handler({**data, "lines": lines})

    printer.lrm_dist_filtered = True  # type: ignore[attr-defined]
    return printer


def quiet_ray_internals() -> None:
    """A Ray worker setup hook: point the worker's State API at its own cluster and silence Ray's
    known-harmless repeated warnings and chatter (LRM_DIST_VERBOSE=1, ``lrm-dist --verbose``, keeps them)."""
    try:  # Ray's State API client in this worker finds its own cluster, not "the latest" on the machine
        import ray

        if ray.is_initialized():  # get_runtime_context() would start a Ray otherwise
            os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - not inside a connected Ray worker: nothing to pin
        pass
    if verbose():
        return
    for name in _NOISY_RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:  # each rank's "Reporting training result N: TrainingReport(...)": its logger is named by file path,
        import ray  # so Ray Train's LoggingConfig (by logger name) misses it

        context = os.path.join(os.path.dirname(ray.__file__), "train", "v2", "_internal", "execution", "context.py")
        logging.getLogger(context).setLevel(logging.WARNING)
    except ImportError:
        pass
    # DeepSpeed's collectives call torch.distributed names torch has deprecated: one warning per call
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a progress bar on stderr (silent when LRM_DIST_PROGRESS=0)."""
    disable = os.environ.get("LRM_DIST_PROGRESS", "1") == "0"
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True, file=sys.stderr)


def progress_bar(total: int, desc: str, unit: str = "it") -> tqdm:
    """A manual progress bar (``.update(n)``) for work that completes out of order."""
    disable = os.environ.get("LRM_DIST_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, file=sys.stderr)


@contextlib.contextmanager
def quiet_prints() -> Iterator[None]:
    """Hold back what a library prints to stdout/stderr inside the block (DeepSpeed's op build and checkpoint
    merge notes, their progress bars) unless verbose; the lrm_dist logger and exceptions still come through."""
    if verbose():
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield
