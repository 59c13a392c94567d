"""``lrm-dist render``: render the asset manifest into WebDataset shards (resumable)."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    from lrm_dist.pipeline import exit_code
    from lrm_dist.render import render_assets

    cfg = load_cli_config(args)
    summary = render_assets(cfg)
    print(summary)
    return exit_code(cfg, {"render": summary}, "lrm-dist render")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("render", help="render assets with Blender on Ray into WebDataset shards (resumable)")
    add_config_args(parser)
    parser.set_defaults(func=_run)
