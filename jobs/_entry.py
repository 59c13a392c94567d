"""What every job script does: read the pipeline config, join (or start) Ray, run stage functions in order.

Stage functions are imported only when their stage runs, so a job for one stage works as soon as that
stage's library function exists, whatever the state of the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from lrm_dist.cli import add_config_args
from lrm_dist.log import get_logger

log = get_logger(__name__)

# Stage name -> "module:function"; each function takes the PipelineConfig and returns a printable summary.
STAGE_FUNCTIONS: dict[str, str] = {
    "assets": "lrm_dist.assets:build_assets",
    "render": "lrm_dist.render:render_assets",
    "train": "lrm_dist.train:train",
    "eval": "lrm_dist.eval:evaluate",
}


def stage_function(stage: str) -> Callable[[Any], Any]:
    """The library function of ``stage``, imported now; a clear error when it does not exist."""
    if stage not in STAGE_FUNCTIONS:
        raise ValueError(f"stage {stage!r} is unknown; expected one of {', '.join(STAGE_FUNCTIONS)}")
    module_name, _, name = STAGE_FUNCTIONS[stage].partition(":")
    fn = getattr(importlib.import_module(module_name), name, None)
    if not callable(fn):
        raise ValueError(f"stage {stage!r}: {module_name}.{name} does not exist in this lrm_dist")
    return fn


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The arguments every job takes: the pipeline config file and ``--set key.path=value`` overrides."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_args(parser, required=True)
    return parser


def run_stages(stages: Sequence[str], config: str, overrides: Sequence[str] = ()) -> list[Any]:
    """Load the config, connect to Ray (RAY_ADDRESS / the job's cluster, else a local one), run ``stages``."""
    from lrm_dist.config import dump_config, load_config
    from lrm_dist.ray_utils import init_ray

    cfg = load_config(config, list(overrides))
    fns = [stage_function(stage) for stage in stages]  # fail before connecting when a stage is missing
    log.info("job config (%s):\n%s", config, dump_config(cfg))
    init_ray(cfg.ray)
    results = []
    for stage, fn in zip(stages, fns):
        start = time.perf_counter()
        log.info("stage %s: starting (workdir %s)", stage, cfg.workdir)
        result = fn(cfg)
        log.info("stage %s: done in %.1f s", stage, time.perf_counter() - start)
        print(f"{stage}: {result}", flush=True)
        results.append(result)
    return results


def main(stages: Sequence[str] | None, prog: str, description: str, argv: Sequence[str] | None = None) -> int:
    """Command-line entry of a job script; ``stages=None`` lets ``--stages`` choose. Returns the exit code."""
    from lrm_dist.config import ConfigError

    parser = build_parser(prog, description)
    if stages is None:
        parser.add_argument(
            "--stages", default=",".join(STAGE_FUNCTIONS),
            help=f"comma-separated stages to run in order (default: {','.join(STAGE_FUNCTIONS)})",
        )
    args = parser.parse_args(argv)
    chosen = stages if stages is not None else [s.strip() for s in args.stages.split(",") if s.strip()]
    try:
        run_stages(chosen, args.config, args.overrides)
    except (ConfigError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
