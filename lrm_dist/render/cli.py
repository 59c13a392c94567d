"""``lrm-dist render``: render the asset manifest into WebDataset shards (resumable)."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    from lrm_dist.render import render_assets

    summary = render_assets(load_cli_config(args))
    print(summary)
    return 0 if summary.done + summary.skipped > 0 or summary.assets == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("render", help="render assets with Blender on Ray into WebDataset shards (resumable)")
    add_config_args(parser)
    parser.set_defaults(func=_run)
