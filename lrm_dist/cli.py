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


class _ConfigAction(argparse.Action):
    """Stores the config from ``-c/--config`` or the positional slot (one ``dest``, ``config``).

    The same file named twice is fine; two different ones stop at once with one line and exit code 2,
    the form of every other user error (``lrm-dist render: error: ...``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:  # the positional slot left empty
            return
        given = getattr(namespace, self.dest, None)
        if given is not None and os.path.normpath(given) != os.path.normpath(values):
            parser.exit(2, f"{parser.prog}: error: two configs given ({given} and {values}): name one\n")
        setattr(namespace, self.dest, values)


def add_config_args(parser: argparse.ArgumentParser, positional: bool = True, required: bool = False,
                    example: str = "render.views=8") -> None:
    """The config arguments every command takes: ``-c/--config CONFIG`` and ``--set key.path=value`` overrides.

    ``positional`` also accepts the config as the positional CONFIG, after any positionals already added
    (every subcommand but ``infer``, whose images take the positional slot): ``lrm-dist run
    configs/default.yaml`` and ``lrm-dist run -c configs/default.yaml`` are the same. ``required``
    (the job scripts) only changes the help: the caller checks ``args.config`` after parsing, as one of
    the two forms must be given.
    """
    default = "required" if required else "default: the built-in demo, configs/default.yaml"
    parser.add_argument("-c", "--config", action=_ConfigAction, default=None, metavar="CONFIG",
                        help=f"pipeline config YAML ({default})")
    if positional:
        parser.add_argument("config", nargs="?", action=_ConfigAction, default=None, metavar="CONFIG",
                            help="the same as -c CONFIG")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
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
        epilog="Every subcommand takes the pipeline config as -c CONFIG (default: the built-in demo; all but infer "
        "also take it as the positional CONFIG) and --set key.path=value overrides; `lrm-dist config show` lists "
        "every key.",
    )
    parser.add_argument("--version", action="version", version=f"lrm-dist {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="keep Ray's, Ray Train's, Ray Data's and DeepSpeed's own console chatter (start-up and progress lines, "
                        "known-harmless warnings, op-build notes), which is held back by default")
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
