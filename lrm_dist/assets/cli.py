"""``lrm-dist assets``: build the asset manifest."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    from lrm_dist.assets import build_assets

    summary = build_assets(load_cli_config(args))
    print(summary)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("assets", help="list, check and normalise assets into assets.parquet")
    add_config_args(parser)
    parser.set_defaults(func=_run)
