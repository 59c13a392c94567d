"""``lrm-dist eval -c CONFIG``: evaluate a checkpoint on the held-out assets and write the tables and the report."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    cfg = load_cli_config(args)
    if args.checkpoint:
        cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"checkpoint": args.checkpoint})})
    if args.report_only:
        from lrm_dist.eval import write_report

        print(f"report: {write_report(cfg.layout().eval_dir, cfg)}")
        return 0
    from lrm_dist.eval import evaluate
    from lrm_dist.pipeline import exit_code

    summary = evaluate(cfg)
    print(summary)
    return exit_code(cfg, {"eval": summary}, "lrm-dist eval")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate a checkpoint on held-out assets (IoU, Chamfer, NC, F-score) + report")
    add_config_args(parser, example="eval.limit=50")
    parser.add_argument("--checkpoint", default=None, help="model folder or hub id to evaluate (sets eval.checkpoint)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the existing tables")
    parser.set_defaults(func=_run)
