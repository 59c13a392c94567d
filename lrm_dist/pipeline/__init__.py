"""The whole pipeline: assets -> render (-> upscale) -> shards -> train -> eval, each stage resumable."""

from __future__ import annotations

import importlib
import time

from lrm_dist.log import get_logger

log = get_logger(__name__)

STAGES: dict[str, tuple[str, str]] = {
    "assets": ("lrm_dist.assets", "build_assets"),
    "render": ("lrm_dist.render", "render_assets"),
    "train": ("lrm_dist.train", "train"),
    "eval": ("lrm_dist.eval", "evaluate"),
}
"""Stage name -> (module, function taking a PipelineConfig), in pipeline order."""


def run_pipeline(cfg, stages: list[str] | None = None) -> dict[str, object]:
    """Run ``stages`` (default: all) in order on one config; returns each stage's summary."""
    names = list(STAGES) if stages is None else stages
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {', '.join(map(repr, unknown))}; stages: {', '.join(STAGES)}")
    results: dict[str, object] = {}
    for name in names:
        module, func = STAGES[name]
        start = time.perf_counter()
        log.info("stage %s: starting", name)
        results[name] = getattr(importlib.import_module(module), func)(cfg)
        log.info("stage %s: done in %.1f s: %s", name, time.perf_counter() - start, results[name])
    return results
