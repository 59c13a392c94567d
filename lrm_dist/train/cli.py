"""``lrm-dist train CONFIG``: fine-tune the LRM on the render stage's shards with Ray Train + DeepSpeed."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    from lrm_dist.train import train

    print(train(load_cli_config(args)))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="fine-tune the LRM on the shards (Ray Train + DeepSpeed)")
    add_config_args(parser)
    parser.set_defaults(func=_run)
