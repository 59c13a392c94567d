"""``lrm-dist run``: the whole pipeline on one config."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    from lrm_dist.pipeline import exit_code, run_pipeline

    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    cfg = load_cli_config(args)
    results = run_pipeline(cfg, stages)
    print("pipeline summary:")
    for name, result in results.items():
        print(f"  {name}: {result}")
    return exit_code(cfg, results, "lrm-dist run")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run the whole pipeline (assets, render, train, eval)")
    add_config_args(parser)
    parser.add_argument("--stages", help="comma-separated subset, e.g. assets,render")
    parser.set_defaults(func=_run)
