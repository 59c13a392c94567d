"""``train(cfg)``: launch the Ray Train + DeepSpeed job on the shards, then export the final model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrm_dist.config import PipelineConfig, dump_config
from lrm_dist.layout import RunLayout
from lrm_dist.log import get_logger, verbose
from lrm_dist.storage import Storage, arrow_filesystem, configure_from, is_url

log = get_logger(__name__)


@dataclass
class TrainResult:
    """What a training run left behind."""

    # Local folders are Paths; in an object-store workdir (s3://...) they are URLs.
    run_dir: Path | str                # <storage_path>/<run_name>: Ray Train's checkpoints and state
    checkpoint: Path | str | None      # the last merged checkpoint folder
    export_dir: Path | str | None      # HF-layout model (config.json + model.safetensors)
    metrics: dict[str, Any] = field(default_factory=dict)  # rank 0's last checkpointed report
    tensorboard_dir: Path | str | None = None

    def __str__(self) -> str:
        step = self.metrics.get("step")
        head = f"trained to step {step}" if step is not None else "trained"
        return (f"{head}: checkpoint {self.checkpoint or '-'}\n  model: {self.export_dir or '-'}"
                f"\n  tensorboard: {self.tensorboard_dir or '-'}")


def _abs(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _use_gpu(device: str) -> bool:
    """Whether the workers get GPUs: ``train.device`` through the one device rule, against the Ray cluster
    (``cuda`` on a cluster without GPUs is a one-line error, not workers waiting forever for one)."""
    import ray

    from lrm_dist.device import resolve_device_type

    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    return resolve_device_type(device, "train.device", cuda_available=has_gpus, where="in the Ray cluster") == "cuda"


def _folder(path: str) -> Path | str:
    """A local folder as an absolute Path, an object-store folder as its URL (pathlib would fold ``s3://``)."""
    return path.rstrip("/") if is_url(path) else Path(_abs(path))


def train(cfg: PipelineConfig) -> TrainResult:
    """Train (or resume: same run name and storage path) to ``train.max_steps`` and export the model to
    ``layout().model_dir``.

    Holds the locks of the run folder and the export folder: a second job on either is refused.
    """
    from lrm_dist.locks import folder_lock

    configure_from(cfg)
    layout = cfg.layout()
    run_dir, export_dir = _folder(layout.train_run_dir), _folder(layout.model_dir)
    with folder_lock(run_dir, f"train run {cfg.train.run_name!r}"), folder_lock(export_dir, "train export"):
        return _train(cfg, layout)


def _train(cfg: PipelineConfig, layout: RunLayout) -> TrainResult:
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from lrm_dist.errors import UserError
    from lrm_dist.ray_utils import init_ray
    from lrm_dist.train.data import ray_dataset, resolve_shards
    from lrm_dist.train.loop import train_loop_per_worker

    tcfg = cfg.train
    train_dir = _folder(layout.train_dir)
    run_dir, export_dir = _folder(layout.train_run_dir), _folder(layout.model_dir)
    storage = str(run_dir).rsplit("/", 1)[0]
    tb_dir = _folder(layout.train_tensorboard_dir)
    ext_dir = tcfg.torch_extensions_dir and _abs(tcfg.torch_extensions_dir)  # None: each node's own cache
    urls = [_abs(u) for u in resolve_shards(layout.train_shards)]
    seed = cfg.seed if tcfg.seed is None else tcfg.seed

    init_ray(cfg.ray)
    use_gpu = _use_gpu(tcfg.device)
    train_store = Storage(str(train_dir))
    train_store.makedirs()
    train_store.write_bytes_atomic(layout.train_config.removeprefix(f"{layout.train_dir}/"), dump_config(cfg).encode())
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
            name=tcfg.run_name, **_ray_storage(storage),
            failure_config=ray.train.FailureConfig(max_failures=tcfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=tcfg.keep_checkpoints),
            # Ray Train's own INFO lines (resources requested, worker group started, each checkpoint and
            # report) repeat what the progress lines say; `lrm-dist --verbose` keeps them
            logging_config=ray.train.LoggingConfig(log_level="INFO" if verbose() else "WARNING"),
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
    checkpoint = _folder(_checkpoint_url(result.checkpoint, storage)) if result.checkpoint is not None else None
    exported = None
    if checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            exported = _export(folder, export_dir)
    else:
        log.warning("run %r reported no checkpoint: nothing to export", tcfg.run_name)
    return TrainResult(run_dir, checkpoint, exported, dict(result.metrics or {}), tb_dir)


def _ray_storage(storage: str) -> dict[str, Any]:
    """Ray Train's ``storage_path`` (and, on object storage, the ``storage_filesystem`` with the job's
    storage options: an S3-compatible endpoint, ...)."""
    if not is_url(storage):
        return {"storage_path": storage}
    filesystem, path = arrow_filesystem(storage)
    return {"storage_path": path, "storage_filesystem": filesystem}


def _checkpoint_url(checkpoint, storage: str) -> str:
    """A Ray Train checkpoint's folder as a local path or, on object storage, a URL."""
    if not is_url(storage):
        return checkpoint.path
    import fsspec

    return fsspec.core.url_to_fs(storage)[0].unstrip_protocol(checkpoint.path)


def _export(folder: str, export_dir: Path | str) -> Path | str:
    """Export a (local) checkpoint folder; on object storage the model is written locally, then uploaded
    with ``config.json`` last (what marks a trained model as there)."""
    from lrm_dist.train.export import export_checkpoint

    if not is_url(export_dir):
        return export_checkpoint(folder, export_dir)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lrm-export-") as tmp:
        local = export_checkpoint(folder, Path(tmp) / "model")
        Storage(str(export_dir)).upload_folder(local, last=("config.json",))
    log.info("uploaded the exported model to %s", export_dir)
    return export_dir
