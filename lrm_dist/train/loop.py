"""The Ray Train worker function: DeepSpeed engine, streamed batches, losses, logging, checkpoints.

Every rank runs ``train_loop_per_worker``; checkpoints are collective (every rank writes its own
DeepSpeed shard into its own folder and reports it under the same ``checkpoint_dir_name``; Ray
merges them). A restarted worker group (``FailureConfig``) or a re-run with the same name and
storage path gets the last checkpoint from ``ray.train.get_checkpoint()`` and continues from its
step, optimizer, scheduler, RNG and data position.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lrm_dist.log import get_logger, quiet_prints

log = get_logger(__name__)


class _Meter:
    """Running sums of per-step metrics between two log lines."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def mean_across_ranks(self, device: torch.device) -> dict[str, float]:
        """Per-step means, averaged over all ranks (a collective: every rank calls it at the same step).

        ``device`` is the training device: NCCL reduces only CUDA tensors, gloo CPU ones.
        """
        import torch.distributed as dist

        keys = sorted(self.sums)
        values = torch.tensor([self.sums[k] / max(1, self.count) for k in keys], dtype=torch.float64, device=device)
        if dist.is_available() and dist.is_initialized() and keys:
            dist.all_reduce(values)
            values /= dist.get_world_size()
        self.sums, self.count = {}, 0
        return dict(zip(keys, values.cpu().tolist()))


def _terms_without_a_lift(loss, model: torch.nn.Module) -> list[str]:
    """Loss terms that are on but need the image lift's depth layers, which ``model`` does not have."""
    if getattr(model, "lift", None) is not None:
        return []
    return [name for name in ("source_depth", "source_layers") if getattr(loss, name) > 0]


class _MissingMembers:
    """Samples trained without depth, normal or occupancy members that an active loss term needs (the term
    is off for them): warns once per member."""

    MEMBERS = {"depth": "render_depth_mask", "normal": "render_normal_mask", "occupancy": "occupancy_mask"}

    def __init__(self, rank: int, loss):
        self.rank, self.warned = rank, set()
        needed = {"depth": loss.depth + loss.source_depth, "normal": loss.normal, "occupancy": loss.occupancy + loss.source_layers}
        self.members = {name: key for name, key in self.MEMBERS.items() if needed[name] > 0}

    def check(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """This batch's share of samples lacking each member, as ``data/no_<member>`` metrics: a sample lacks
        it when its mask has no nonzero entry (all of them for a zero-width mask, e.g. no occupancy points)."""
        n = len(batch["render_image"])
        out = {}
        for name, key in self.members.items():
            lacking = int((batch[key].flatten(1) == 0).all(1).sum()) if key in batch else n
            if lacking and name not in self.warned:
                self.warned.add(name)
                log.warning("rank %d: %d sample(s) of this batch have no %s supervision (term off for them; "
                            "counted as data/no_%s)", self.rank, lacking, name, name)
            out[f"data/no_{name}"] = lacking / n
        return out


def _make_batches(config: dict[str, Any], cfg, rank: int, world: int, source_size: int, start_batch: int):
    from lrm_dist.train.data import ray_data_batches, webdataset_batches

    tcfg = cfg.train
    if tcfg.data.backend == "ray_data":
        import ray.train

        return ray_data_batches(ray.train.get_dataset_shard("train"), tcfg.micro_batch_size, start_batch)
    return webdataset_batches(
        config["urls"], rank, world, tcfg.data.loader_workers, tcfg.micro_batch_size, tcfg.sample, source_size,
        config["seed"], tcfg.data.shuffle_buffer, start_batch, cfg.shards.holdout_fraction, tcfg.data.max_bad_fraction,
        tcfg.lift_warmup_steps * tcfg.grad_accum_steps,  # the warm-up's batches: its samples only
    )


def _duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _progress_line(step: int, max_steps: int, m: dict[str, float]) -> str:
    """One log line per ``log_every`` steps: progress with its ETA (from the recent step time), losses, speed."""
    terms = " ".join(f"{k[5:]} {v:.4g}" for k, v in sorted(m.items()) if k.startswith("loss/") and k != "loss/total")
    eta = _duration((max_steps - step) * m.get("time/step_s", 0.0))
    return (
        f"step {step}/{max_steps} ({100 * step / max_steps:.0f}%, eta {eta}) | loss {m.get('loss/total', float('nan')):.4f} "
        f"({terms}) | lr {m.get('lr', 0):.2e} "
        f"| grad-norm {m.get('grad_norm', float('nan')):.3g} | {m.get('throughput/samples_per_s', 0):.2f} samples/s "
        f"| step {m.get('time/step_s', 0):.2f}s (data {m.get('time/data_s', 0):.2f}s) | epoch {int(m.get('epoch', 0))}"
    )


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry: ``config`` holds the pipeline config (dict), shard urls, seed and resolved paths."""
    from lrm_dist.train.deepspeed_config import name_deepspeed_accelerator
    from lrm_dist.train.deepspeed_ops import use_extensions_dir

    use_extensions_dir(config["torch_extensions_dir"])

    name_deepspeed_accelerator(bool(config["use_gpu"]))
    import deepspeed
    import ray.train
    import ray.train.torch

    from lrm_dist.config import PipelineConfig
    from lrm_dist.model.pretrained import build_model
    from lrm_dist.train.calibrate import IsoCalibrator, SourceFraming
    from lrm_dist.train.checkpoint import load_checkpoint, save_checkpoint
    from lrm_dist.train.deepspeed_config import (
        build_deepspeed_config, input_dtype, loop_clips_gradients, resolve_train_precision,
    )
    from lrm_dist.train.losses import LossFn
    from lrm_dist.train.optim import build_optimizer, build_scheduler
    from lrm_dist.train.step import forward_batch, forward_layers, optimizer_step, to_device
    from lrm_dist.tensorboard import Board, view_grid

    cfg = PipelineConfig.model_validate(config["cfg"])
    tcfg = cfg.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    use_gpu = bool(config["use_gpu"])
    device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
    precision = resolve_train_precision(tcfg, use_gpu)

    torch.manual_seed(config["seed"])  # identical initial weights on every rank
    model = build_model(cfg.model, device=device)
    if tcfg.activation_checkpointing:
        model.set_gradient_checkpointing(True)
    if tcfg.compiles_blocks(use_gpu):
        model.compile_blocks()
    model.synthesizer.exact_sampling = tcfg.exact_field_sampling(use_gpu)
    source_size = tcfg.sample.source_size or model.source_size
    optimizer = build_optimizer(model, tcfg.lr, tcfg.weight_decay, tuple(tcfg.betas), tcfg.eps, fused=use_gpu)
    scheduler = build_scheduler(optimizer, tcfg.max_steps, tcfg.warmup_steps, tcfg.min_lr_ratio)
    with quiet_prints():  # DeepSpeed prints each op it builds (on CPU, its shared-memory comm op)
        engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler,
            config=build_deepspeed_config(tcfg, world, use_gpu),
        )
    dtype = input_dtype(precision)
    clip = tcfg.grad_clip if loop_clips_gradients(tcfg, use_gpu) else 0.0
    loss_fn = LossFn(tcfg.loss, device)
    if tcfg.lift_warmup_steps and model.lift is None:
        raise ValueError(f"train.lift_warmup_steps={tcfg.lift_warmup_steps} trains the image lift's depth layers, "
                         "and this model has no image lift")
    for name in _terms_without_a_lift(tcfg.loss, model) if rank == 0 else ():
        log.warning("train.loss.%s is on but the model has no image lift (model.image_lift, or a pretrained "
                    "checkpoint without one): the term is off", name)
    torch.manual_seed(config["seed"] + 1 + rank)  # render jitter differs per rank

    step, start_batch = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(engine, folder, rank)
        step, start_batch = int(state["step"]), int(state["batches"])
        if rank == 0:
            log.info("resumed from %s at step %d (batch %d)", checkpoint.path, step, start_batch)
    if step >= tcfg.max_steps:
        if rank == 0:
            log.info("checkpoint is at step %d >= max_steps %d: nothing to train", step, tcfg.max_steps)
        return

    batches = _make_batches(config, cfg, rank, world, source_size, start_batch)
    board = Board(config["tensorboard_dir"] if rank == 0 else None, purge_step=step + 1 if step else None)
    if rank == 0:
        log.info(
            "training %d -> %d steps on %d %s worker(s): ZeRO-%d, %s, micro-batch %d x accum %d, %.1fM parameters",
            step, tcfg.max_steps, world, "GPU" if use_gpu else "CPU", tcfg.zero_stage, precision,
            tcfg.micro_batch_size, tcfg.grad_accum_steps, sum(p.numel() for p in model.parameters()) / 1e6,
        )
    meter, batches_done, epoch = _Meter(), start_batch, 0
    train_seconds = float(state.get("train_seconds", 0.0)) if checkpoint is not None else 0.0
    calibrator, framing, missing = IsoCalibrator(), SourceFraming(), _MissingMembers(rank, tcfg.loss)
    uniform_start = tcfg.sample.uniform_point_start()
    engine.train()
    while step < tcfg.max_steps:
        t0 = time.perf_counter()
        data_s = 0.0
        for _ in range(tcfg.grad_accum_steps):
            t_data = time.perf_counter()
            batch = next(batches)
            epoch = int(batch.pop("epoch"))
            batch = to_device(batch, device)
            data_s += time.perf_counter() - t_data
            batches_done += 1
            if step < tcfg.lift_warmup_steps:
                out = forward_layers(engine, batch, dtype)
                loss, terms = loss_fn.layers_only(out, batch)
            else:
                out = forward_batch(engine, batch, dtype, points=loss_fn.needs_points)
                loss, terms = loss_fn(out, batch)
            data_shares = missing.check(batch) if "render_image" in batch else {}  # not a warm-up's slim batch
            if rank == 0 and "points_raw_density" in out:  # only rank 0 writes the config it calibrates
                # on the uniform points alone: the volume the eval's IoU counts (surface and ray points come first)
                uniform = slice(uniform_start, None)
                calibrator.add(out["points_raw_density"][:, uniform], batch["occupancy_labels"][:, uniform],
                               batch["occupancy_mask"][:, uniform])
            if rank == 0 and "source_extent" in batch:
                framing.add(batch["source_camera"], batch["source_extent"])
            engine.backward(loss)
            grad_norm = optimizer_step(engine, clip)
        step += 1
        if use_gpu:
            torch.cuda.synchronize(device)
        step_s = time.perf_counter() - t0
        train_seconds += step_s
        meter.add({
            "loss/total": float(loss.detach()), **{f"loss/{k}": v for k, v in terms.items()},
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": grad_norm,
            "time/step_s": step_s, "time/data_s": data_s,
            "throughput/samples_per_s": tcfg.micro_batch_size * tcfg.grad_accum_steps * world / step_s,
            "epoch": float(epoch), **data_shares,
        })
        out_of_time = tcfg.max_minutes is not None and _any_rank(train_seconds >= 60 * tcfg.max_minutes, device)
        last = step == tcfg.max_steps or out_of_time
        if out_of_time and rank == 0:
            log.info("step %d: train.max_minutes (%g) reached; stopping with a checkpoint", step, tcfg.max_minutes)
        if step % tcfg.log_every == 0 or last:
            metrics = meter.mean_across_ranks(device)
            if rank == 0:
                board.scalars(metrics, step)
                log.info(_progress_line(step, tcfg.max_steps, metrics))
        if rank == 0 and (step % tcfg.image_every == 0 or last) and "rgb" in out:
            board.image("views/target|rendered|alpha|opacity", view_grid(
                batch["render_image"][0], out["rgb"][0], out["opacity"][0], batch["render_alpha"][0]
            ), step)
        if step % tcfg.checkpoint_every == 0 or last:
            report = {"step": step, "loss": float(loss.detach()), "batches": batches_done, "train_seconds": train_seconds}
            with tempfile.TemporaryDirectory(prefix="lrm-ckpt-") as folder:
                lrm_config = {**model.config.hf_dict(), **(framing.values() if rank == 0 else {})}
                # how this run framed its inputs (a fine-tuned checkpoint's own values no longer hold)
                for key in ("source_frame", "canonical_distance"):
                    lrm_config.pop(key, None)
                if tcfg.sample.frame != "camera":
                    lrm_config["source_frame"] = tcfg.sample.frame
                if tcfg.sample.source_distance is not None:
                    lrm_config["canonical_distance"] = tcfg.sample.source_distance
                iso = calibrator.iso_level() if rank == 0 else None
                if iso is not None:
                    lrm_config["iso_level"] = iso
                    log.info("step %d: calibrated iso-level %.3f (density) on the last batches' occupancy points", step, iso)
                save_checkpoint(engine, folder, rank, {"step": step, "batches": batches_done, "epoch": epoch,
                                                       "train_seconds": train_seconds}, lrm_config)
                if rank == 0:  # what the quality benchmark's learning curve reads (plain JSON)
                    samples = batches_done * tcfg.micro_batch_size * world
                    Path(folder, "progress.json").write_text(json.dumps(
                        {"step": step, "train_seconds": round(train_seconds, 3), "samples": samples}) + "\n")
                ray.train.report(
                    report, checkpoint=ray.train.Checkpoint.from_directory(folder),
                    checkpoint_dir_name=f"checkpoint_{step:08d}",
                )
            _maybe_fault(tcfg.fault_at_step, step, rank, world, Path(config["run_dir"]))
        if last:
            break
    board.close()


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (a collective), so all ranks stop at the same step."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _maybe_fault(fault_at_step: int | None, step: int, rank: int, world: int, run_dir: Path) -> None:
    """Fault injection for resilience tests: the last rank dies once, right after this step's checkpoint."""
    if fault_at_step != step or rank != world - 1:
        return
    marker = run_dir / f"fault_injected_step{step}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("1\n")
    log.warning("fault injection: rank %d exits after the checkpoint of step %d", rank, step)
    os._exit(1)
