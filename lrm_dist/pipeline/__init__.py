"""The whole pipeline: assets -> render (-> upscale) -> shards -> train -> eval, each stage resumable."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lrm_dist.log import get_logger

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig

log = get_logger(__name__)

STAGES: dict[str, tuple[str, str]] = {
    "assets": ("lrm_dist.assets", "build_assets"),
    "render": ("lrm_dist.render", "render_assets"),
    "train": ("lrm_dist.train", "train"),
    "eval": ("lrm_dist.eval", "evaluate"),
}
"""Stage name -> (module, function taking a PipelineConfig), in pipeline order."""


def stage_function(stage: str) -> Callable[[PipelineConfig], Any]:
    """The library function of ``stage``, imported now; a clear error when it is unknown or missing."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is unknown; stages: {', '.join(STAGES)}")
    module, name = STAGES[stage]
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"stage {stage!r}: {module}.{name} does not exist in this lrm_dist")
    return fn


def run_pipeline(cfg: PipelineConfig, stages: list[str] | None = None) -> dict[str, object]:
    """Run ``stages`` (default: all) in order on one config; returns each stage's summary."""
    names = list(STAGES) if stages is None else stages
    fns = {name: stage_function(name) for name in names}  # every name checked before any work starts
    results: dict[str, object] = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        log.info("stage %s: starting (workdir %s)", name, cfg.workdir)
        results[name] = fn(cfg)
        log.info("stage %s: done in %.1f s: %s", name, time.perf_counter() - start, results[name])
    return results


def failed_items(results: dict[str, object]) -> dict[str, int]:
    """Stage name -> items its summary reports as failed (renders, eval samples), for stages with any."""
    counts = {name: int(getattr(result, "failed", 0) or 0) for name, result in results.items()}
    return {name: n for name, n in counts.items() if n}


def exit_code(cfg: PipelineConfig, results: dict[str, object], prog: str) -> int:
    """1 when a stage reported failed items and ``allow_failed`` is off (what RayJob and CI read), else 0.

    Called after the summaries are printed; says on stderr which stages failed items and where to look.
    """
    failed = failed_items(results)
    if not failed:
        return 0
    what = ", ".join(f"{name} {n}" for name, n in failed.items())
    if cfg.allow_failed:
        print(f"{prog}: failed items accepted (allow_failed): {what}", file=sys.stderr)
        return 0
    print(f"{prog}: failed items: {what} (their manifest rows say why; --set allow_failed=true accepts them)",
          file=sys.stderr)
    return 1
