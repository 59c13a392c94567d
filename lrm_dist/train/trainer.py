"""``train(cfg)``: launch the Ray Train + DeepSpeed job on the shards, then export the final model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrm_dist.config import PipelineConfig, dump_config
from lrm_dist.log import get_logger

log = get_logger(__name__)


@dataclass
class TrainResult:
    """What a training run left behind."""

    run_dir: Path                      # <storage_path>/<run_name>: Ray Train's checkpoints and state
    checkpoint: Path | None            # the last merged checkpoint folder
    export_dir: Path | None            # HF-layout model (config.json + model.safetensors)
    metrics: dict[str, Any] = field(default_factory=dict)  # rank 0's last checkpointed report
    tensorboard_dir: Path | None = None

    def __str__(self) -> str:
        step = self.metrics.get("step")
        head = f"trained to step {step}" if step is not None else "trained"
        return (f"{head}: checkpoint {self.checkpoint or '-'}\n  model: {self.export_dir or '-'}"
                f"\n  tensorboard: {self.tensorboard_dir or '-'}")


def _abs(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _use_gpu(device: str) -> bool:
    import ray

    if device == "cuda":
        return True
    return device == "auto" and ray.cluster_resources().get("GPU", 0) > 0


def _run_paths(cfg: PipelineConfig) -> tuple[Path, Path]:
    """The run's Ray Train folder and its export folder (absolute)."""
    train_dir = Path(_abs(cfg.stage_dir("train")))
    storage = _abs(cfg.train.storage_path or str(train_dir / "ray"))
    return Path(storage) / cfg.train.run_name, Path(_abs(cfg.trained_model_dir()))


def train(cfg: PipelineConfig) -> TrainResult:
    """Train (or resume: same run name and storage path) to ``train.max_steps`` and export the model.

    Holds the locks of the run folder and the export folder: a second job on either is refused.
    """
    from lrm_dist.locks import folder_lock

    run_dir, export_dir = _run_paths(cfg)
    with folder_lock(run_dir, f"train run {cfg.train.run_name!r}"), folder_lock(export_dir, "train export"):
        return _train(cfg)


def _train(cfg: PipelineConfig) -> TrainResult:
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from lrm_dist.errors import UserError
    from lrm_dist.ray_utils import init_ray
    from lrm_dist.train.data import ray_dataset, resolve_shards
    from lrm_dist.train.export import export_checkpoint
    from lrm_dist.train.loop import train_loop_per_worker

    tcfg = cfg.train
    train_dir = Path(_abs(cfg.stage_dir("train")))
    run_dir, export_dir = _run_paths(cfg)
    storage = str(run_dir.parent)
    tb_dir = train_dir / "tensorboard" / tcfg.run_name
    ext_dir = _abs(tcfg.torch_extensions_dir or str(train_dir / "torch_extensions"))
    urls = [_abs(u) for u in resolve_shards(tcfg.data.shards, cfg.workdir)]
    seed = cfg.seed if tcfg.seed is None else tcfg.seed

    init_ray(cfg.ray)
    use_gpu = _use_gpu(tcfg.device)
    train_dir.mkdir(parents=True, exist_ok=True)
    (train_dir / f"{tcfg.run_name}.config.yaml").write_text(dump_config(cfg))
    datasets = None
    if tcfg.data.backend == "ray_data":
        spare = ray.cluster_resources().get("CPU", 0) - tcfg.num_workers * tcfg.cpus_per_worker
        if spare < 1:
            raise ValueError(
                f"train.data.backend 'ray_data' needs CPUs beyond the training workers' for reading and decoding "
                f"({spare:g} left): lower train.cpus_per_worker or add CPUs"
            )
        from lrm_dist.model.config import SIZES

        source = tcfg.sample.source_size or SIZES[cfg.model.size].resolved_source_size()
        if cfg.model.pretrained and tcfg.sample.source_size is None:
            raise ValueError("train.data.backend 'ray_data' with model.pretrained needs train.sample.source_size set")
        # Ray Data's per-operator bars flood worker logs; follow the project's progress switch.
        ray.data.DataContext.get_current().enable_progress_bars = os.environ.get("LRM_DIST_PROGRESS", "1") != "0"
        datasets = {"train": ray_dataset(urls, tcfg.sample, source, holdout=cfg.shards.holdout_fraction,
                                         max_bad_fraction=tcfg.data.max_bad_fraction)}
    loop_config = {
        "cfg": cfg.model_dump(mode="json"), "urls": urls, "seed": seed, "use_gpu": use_gpu,
        "torch_extensions_dir": ext_dir, "tensorboard_dir": str(tb_dir), "run_dir": str(run_dir),
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=tcfg.num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": tcfg.cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=tcfg.run_name, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=tcfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=tcfg.keep_checkpoints),
        ),
        datasets=datasets,
    )
    log.info("Ray Train run %r in %s (%d shard(s), %d worker(s))", tcfg.run_name, run_dir, len(urls), tcfg.num_workers)
    try:
        result = trainer.fit()
    except ray.train.WorkerGroupError as exc:  # a worker's user error (a refused checkpoint, unusable data) is one line
        refused = [e for e in exc.worker_failures.values() if isinstance(e, (UserError, ValueError, OSError))]
        if refused:
            raise refused[0] from None
        raise
    if result.error is not None:
        raise RuntimeError(f"training run {tcfg.run_name!r} failed: {result.error}") from result.error
    checkpoint = Path(result.checkpoint.path) if result.checkpoint is not None else None
    exported = None
    if checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            exported = export_checkpoint(folder, export_dir)
    else:
        log.warning("run %r reported no checkpoint: nothing to export", tcfg.run_name)
    return TrainResult(run_dir, checkpoint, exported, dict(result.metrics or {}), tb_dir)
