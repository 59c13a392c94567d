"""``lrm-dist <stage>``: one CLI, each subcommand a thin wrapper over a library function.

Every stage package has a ``cli.py`` with ``register(subparsers)``; heavy imports happen inside the
command, so ``lrm-dist --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lrm_dist.errors import UserError
from lrm_dist.log import get_logger

log = get_logger(__name__)

# Errors the user can act on (bad config, input, files, a busy workdir): one line and exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, OSError, ValueError)

# Stage packages whose ``cli.register`` adds subcommands, in the order ``--help`` lists them.
_STAGES = ("assets", "render", "upscale", "train", "eval", "serve", "pipeline")


def add_config_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """The config arguments every stage takes: a YAML file and ``--set key.path=value`` overrides."""
    parser.add_argument("config", nargs=None if required else "?", help="pipeline config YAML (default: the built-in demo, configs/default.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set render.views=8 (repeatable)",
    )


def load_cli_config(args: argparse.Namespace):
    """Load the config named on the command line (with its overrides); none named: the demo config."""
    from lrm_dist.config import DEFAULT_CONFIG, load_config

    return load_config(args.config or DEFAULT_CONFIG, args.overrides)


def _show_config(args: argparse.Namespace) -> int:
    """``lrm-dist config show``: every resolved key with its value and what it means."""
    import json

    from lrm_dist.config import describe_config

    rows = describe_config(load_cli_config(args))
    width = max(len(key) for key, _, _ in rows)
    for key, value, description in rows:
        shown = json.dumps(value)
        print(f"{key:<{width}} = {shown}" + (f"    # {description}" if description else ""))
    return 0


def _register_config(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="print the resolved config: every key, its value and its meaning")
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    show = actions.add_parser("show", help="resolved values of CONFIG (with --set overrides), one key per line")
    add_config_args(show)
    show.set_defaults(func=_show_config)


def build_parser() -> argparse.ArgumentParser:
    from lrm_dist import __version__

    parser = argparse.ArgumentParser(
        prog="lrm-dist", description="3D assets in, a trained image-to-3D model out: one subcommand per pipeline stage.",
        epilog="Every stage takes a pipeline config (default: the built-in demo) and --set key.path=value overrides; "
        "`lrm-dist config show` lists every key.",
    )
    parser.add_argument("--version", action="version", version=f"lrm-dist {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="keep Ray's internal warnings (silenced by default when they are known to be harmless)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    _register_config(sub)
    for stage in _STAGES:
        try:
            module = importlib.import_module(f"lrm_dist.{stage}.cli")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"lrm_dist.{stage}", f"lrm_dist.{stage}.cli"):  # stage not written yet
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lrm-dist`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["LRM_DIST_VERBOSE"] = "1"  # read by the Ray workers this command starts
    try:
        result = args.func(args)
    except BrokenPipeError:  # the output went to a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        print(f"lrm-dist {args.command}: error: {describe(exc)}", file=sys.stderr)
        return 2
    return int(result or 0)


def describe(exc: BaseException) -> str:
    """An error for the user: its message, or for an OS error the file and the reason."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
