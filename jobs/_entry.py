"""What every job script does: read the pipeline config, run stage functions in order, exit as the CLI does.

The stages are the pipeline's own registry (``lrm_dist.pipeline.STAGES``). A job joins Ray first
(RAY_ADDRESS / the job's cluster, else a local one on loopback). Bad input is one line and exit 2,
failed items exit 1 after the summaries (``allow_failed`` accepts them), exactly as ``lrm-dist``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lrm_dist.cli import USER_ERRORS, add_config_args, describe
from lrm_dist.log import get_logger

log = get_logger(__name__)


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The arguments every job takes: the pipeline config file (CONFIG or ``-c CONFIG``, as ``lrm-dist``) and
    ``--set key.path=value`` overrides; ``main`` refuses a command line without a config."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_args(parser, required=True)
    return parser


def main(stages: Sequence[str] | None, prog: str, description: str, argv: Sequence[str] | None = None) -> int:
    """Command-line entry of a job script; ``stages=None`` lets ``--stages`` choose. Returns the exit code."""
    from lrm_dist.config import dump_config, load_config
    from lrm_dist.pipeline import STAGES, exit_code, run_pipeline, stage_function
    from lrm_dist.ray_utils import init_ray

    parser = build_parser(prog, description)
    if stages is None:
        parser.add_argument(
            "--stages", default=",".join(STAGES),
            help=f"comma-separated stages to run in order (default: {','.join(STAGES)})",
        )
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("a pipeline config is required: CONFIG or -c CONFIG")
    chosen = list(stages) if stages is not None else [s.strip() for s in args.stages.split(",") if s.strip()]
    try:
        cfg = load_config(args.config, list(args.overrides))
        for stage in chosen:  # fail before any work when a stage is unknown
            stage_function(stage)
        log.info("job config (%s):\n%s", args.config, dump_config(cfg))
        init_ray(cfg.ray)  # a job joins its cluster (RAY_ADDRESS) up front, whatever its stages need
        results = run_pipeline(cfg, chosen)
    except USER_ERRORS as exc:
        print(f"{prog}: error: {describe(exc)}", file=sys.stderr)
        return 2
    for stage, result in results.items():
        print(f"{stage}: {result}", flush=True)
    return exit_code(cfg, results, prog)
