"""How fast the image lift's 2D encoder learns the source view's depth layers on its own (no 3D, no rendering).

Usage: python benchmarks/lift_layers.py CONFIG [--set KEY=VALUE ...] [--size 112] [--minutes 10] [--encoder unet]

Every view of the training split becomes an input (the view as training frames it, ``eval.reconstruct.prepare_input``)
with its ground-truth first and last surface (``geometry.occupancy.surface_layers``); the held-out split gives
its input views. An ``ImageLift`` is trained on ``train.loss.source_layers``' loss alone through
``ImageLift.source_layers`` (what ``train.lift_warmup_steps`` trains), batch 16, AdamW at ``train.lr`` (100-step
warm-up), and the table prints the held-out loss against samples seen. For scale: a perfect silhouette with a
constant front and thickness scores about 0.27, the exact front with a constant thickness about 0.10.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lrm_dist.config import load_config
from lrm_dist.eval.reconstruct import prepare_input
from lrm_dist.geometry.occupancy import surface_layers
from lrm_dist.model.lift import ImageLift
from lrm_dist.shards.reader import iter_render_samples
from lrm_dist.shards.split import is_heldout
from lrm_dist.train.losses import layers_loss


def _examples(cfg, size: int) -> dict[str, list[tuple[torch.Tensor, ...]]]:
    """(image, camera, first, last, hit) per input view: every view of training assets, the eval view of held-out ones."""
    out: dict[str, list] = {"training": [], "held-out": []}
    distance, frame = cfg.train.sample.source_distance, cfg.train.sample.frame
    for sample in iter_render_samples(cfg.layout().eval_render_dir):
        grid = sample.get("occupancy")
        if grid is None:
            continue
        held = is_heldout(sample["asset_id"], cfg.shards.holdout_fraction)
        for view in [cfg.eval.input_view] if held else range(len(sample["c2w"])):
            prepared = prepare_input(sample["rgba"][view], sample["c2w"], sample["intrinsics"], size, view, distance, frame)
            scale = float(np.cbrt(abs(np.linalg.det(np.linalg.inv(prepared.model_to_object)[:3, :3]))))
            first, last, hit = surface_layers(grid, sample["c2w"][view], sample["intrinsics"][view], size // 2)
            out["held-out" if held else "training"].append((
                torch.from_numpy(prepared.image), torch.from_numpy(prepared.camera),
                torch.from_numpy(first * scale)[None], torch.from_numpy(last * scale)[None],
                torch.from_numpy(hit.astype(np.float32))[None],
            ))
    return out


def _stack(items: list[tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
    return [torch.stack(column) for column in zip(*items)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--size", type=int, default=112, help="Input side (the layers are half of it).")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--encoder", default="unet", choices=("conv", "unet"))
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    examples = _examples(cfg, args.size)
    if not examples["training"] or not examples["held-out"]:
        raise SystemExit(f"no training or held-out views with occupancy grids under {cfg.layout().eval_render_dir}")
    held = [t.to(device) for t in _stack(examples["held-out"])]
    print(f"{len(examples['training'])} training views, {len(examples['held-out'])} held-out views "
          f"({time.perf_counter() - start:.0f} s to prepare), {args.encoder} encoder, {args.size} px, {device}")
    torch.manual_seed(cfg.seed)
    lift = ImageLift(feature_dim=8, resolution=4, width=64, encoder=args.encoder).to(device)
    params = [p for name, p in lift.named_parameters() if name.startswith(("cnn.", "layers."))]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    rng = np.random.default_rng(cfg.seed)

    def held_loss() -> float:
        with torch.no_grad():
            layers = lift.source_layers(held[0], held[1])
            return float(layers_loss(layers[:, :1], layers[:, 1:], held[2], held[3], held[4]))

    print(f"{'step':>6} {'samples':>8} {'samples/s':>9} | held-out layer loss")
    print(f"{0:6d} {0:8d} {'':>9} | {held_loss():.4f}")
    step, train_start = 0, time.perf_counter()
    while time.perf_counter() - train_start < 60 * args.minutes:
        batch = [t.to(device) for t in _stack([examples["training"][i] for i in rng.integers(0, len(examples["training"]), args.batch)])]
        for group in optimizer.param_groups:
            group["lr"] = cfg.train.lr * min(1.0, (step + 1) / 100)
        layers = lift.source_layers(batch[0], batch[1])
        loss = layers_loss(layers[:, :1], layers[:, 1:], batch[2], batch[3], batch[4])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            rate = step * args.batch / (time.perf_counter() - train_start)
            print(f"{step:6d} {step * args.batch:8d} {rate:9.1f} | {held_loss():.4f}", flush=True)
    print(f"final: {step} steps, held-out layer loss {held_loss():.4f}")


if __name__ == "__main__":
    main()
