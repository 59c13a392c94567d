"""``lrm-dist infer IMAGE... -o DIR`` (images to meshes) and ``lrm-dist serve`` (the HTTP app on Ray Serve).

Both take the config as every subcommand does, ``-c CONFIG``; ``serve`` also as the positional CONFIG, while
``infer``'s positionals are its images.
"""

from __future__ import annotations

import argparse

from lrm_dist.cli import add_config_args


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model folder or hub id (sets model.pretrained; default: the config's trained model)")


def _load(args: argparse.Namespace):
    """The config, with the model to serve: ``--model``, else ``model.pretrained``, else the workdir's trained one."""
    from lrm_dist.serve.served_model import load_serving_config

    return load_serving_config(args.config, args.overrides, args.model)


def _infer(args: argparse.Namespace) -> int:
    """Run infer and print its summary; exit 1 when an image failed (each was logged as one line)."""
    from lrm_dist.errors import UserError
    from lrm_dist.pipeline import exit_code
    from lrm_dist.serve.infer import infer_images

    configs = [path for path in args.images if path.lower().endswith((".yaml", ".yml"))]
    if configs:  # what every other subcommand takes positionally
        raise UserError(f"{configs[0]} is a config, not an image: pass it as -c {configs[0]}")
    cfg = _load(args)
    if args.video:
        cfg = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"video": True})})
    summary = infer_images(args.images, args.out, cfg)
    print(summary)
    return exit_code(cfg, {"infer": summary}, "lrm-dist infer")


def _serve(args: argparse.Namespace) -> int:
    from lrm_dist.serve.app import run_app

    run_app(_load(args), blocking=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    infer = subparsers.add_parser("infer", help="reconstruct images (files or folders) into GLB/PLY/OBJ meshes")
    infer.add_argument("images", nargs="+", metavar="IMAGE", help="image files (RGBA cut-outs, or RGB with rembg) or folders of them")
    add_config_args(infer, positional=False, example="serve.mesh_resolution=384")
    infer.add_argument("-o", "--out", required=True, help="output folder")
    infer.add_argument("--video", action="store_true", help="also write a turntable video per image")
    _model_arg(infer)
    infer.set_defaults(func=_infer)

    serve = subparsers.add_parser("serve", help="run the image-to-GLB HTTP app on Ray Serve (POST an image to /)")
    add_config_args(serve, example="serve.mesh_resolution=384")
    _model_arg(serve)
    serve.set_defaults(func=_serve)
