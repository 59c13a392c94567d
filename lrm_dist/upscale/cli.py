"""``lrm-dist upscale IN_DIR OUT_DIR [-c CONFIG]``: Real-ESRGAN on a folder of images."""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args, load_cli_config


def _run(args: argparse.Namespace) -> int:
    """Upscale the folder and print the summary; exit 1 when an image failed (each was logged as one line)."""
    from lrm_dist.pipeline import exit_code
    from lrm_dist.upscale.folder import upscale_folder

    cfg = load_cli_config(args)
    summary = upscale_folder(args.in_dir, args.out_dir, cfg.upscale, overwrite=args.overwrite)
    print(summary)
    return exit_code(cfg, {"upscale": summary}, "lrm-dist upscale")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("upscale", help="upscale a folder of images with Real-ESRGAN")
    parser.add_argument("in_dir", help="folder of images (png, jpg, webp, ...)")
    parser.add_argument("out_dir", help="folder for the upscaled PNGs (same stems)")
    add_config_args(parser, example="upscale.tile=256")  # CONFIG may also follow OUT_DIR, as it always could
    parser.add_argument("--overwrite", action="store_true", help="redo images whose output exists")
    parser.set_defaults(func=_run)
