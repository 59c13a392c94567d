"""The Ray stage: an upscaler usable as a Ray actor or as a Ray Data ``map_batches`` callable class.

Sits between the renderer and the shard writer. One instance loads the network once (GPU when the
actor has one, CPU otherwise) and logs its throughput in input megapixels per second.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lrm_dist.log import get_logger
from lrm_dist.upscale.config import UpscaleConfig

log = get_logger(__name__)


class Upscaler:
    """``Upscaler(cfg).upscale_images(list of HxWx4 uint8) -> list``; ``__call__`` serves Ray Data batches."""

    def __init__(self, cfg: UpscaleConfig | dict[str, Any], log_every_s: float = 30.0) -> None:
        from lrm_dist.upscale.engine import Upsampler

        self.cfg = cfg if isinstance(cfg, UpscaleConfig) else UpscaleConfig.model_validate(cfg)
        self.engine = Upsampler(self.cfg)
        self.log_every_s = log_every_s
        self.images = 0
        self.input_pixels = 0
        self.seconds = 0.0
        self._last_log = time.monotonic()

    @property
    def outscale(self) -> float:
        """Output size / input size."""
        return self.engine.outscale

    def upscale_images(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Upscale RGBA (or grey/RGB; uint8/uint16) HxWxC arrays; returns them in order, same dtype/channels."""
        start = time.perf_counter()
        out = self.engine.upscale_images(images)
        self.seconds += time.perf_counter() - start
        self.images += len(images)
        self.input_pixels += sum(int(im.shape[0]) * int(im.shape[1]) for im in images)
        if time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            log.info("upscaled %d images: %s", self.images, self._rate())
        return out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data (numpy format): replace ``batch[cfg.image_column]`` by the upscaled images."""
        column = self.cfg.image_column
        if column not in batch:
            raise KeyError(f"upscale: batch has no column {column!r} (columns: {sorted(batch)})")
        out = self.upscale_images(list(batch[column]))
        if len({im.shape for im in out}) == 1:
            batch[column] = np.stack(out)
        else:
            ragged = np.empty(len(out), dtype=object)
            ragged[:] = out
            batch[column] = ragged
        return batch

    def stats(self) -> dict[str, float]:
        """Totals so far: images, input megapixels, seconds, input MP/s."""
        mp = self.input_pixels / 1e6
        return {"images": self.images, "input_mp": mp, "seconds": self.seconds,
                "input_mp_per_s": mp / self.seconds if self.seconds else 0.0}

    def _rate(self) -> str:
        s = self.stats()
        return (f"{s['input_mp']:.3g} input MP in {s['seconds']:.1f} s = {s['input_mp_per_s']:.3g} MP/s "
                f"({s['images'] / max(s['seconds'], 1e-9):.3g} images/s)")


def ray_resources(cfg: UpscaleConfig) -> dict[str, float]:
    """``num_cpus``/``num_gpus`` for one upscale actor: GPUs only when the cluster has them and device allows."""
    import ray

    from lrm_dist.device import resolve_device_type

    gpus = cfg.actors.num_gpus if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    device = resolve_device_type(cfg.device, "upscale.device", cuda_available=gpus > 0,
                                 where="to the upscale actors (no GPU in the Ray cluster, or upscale.actors.num_gpus=0)")
    return {"num_cpus": cfg.actors.num_cpus, "num_gpus": gpus if device == "cuda" else 0.0}


def create_actors(cfg: UpscaleConfig) -> list[Any]:
    """``cfg.actors.count`` Ray actors running :class:`Upscaler` (use with ``ray.util.ActorPool``)."""
    import ray

    remote = ray.remote(Upscaler).options(**ray_resources(cfg))
    return [remote.remote(cfg.model_dump()) for _ in range(cfg.actors.count)]


def upscale_dataset(ds: Any, cfg: UpscaleConfig) -> Any:
    """A Ray Data pipeline step: ``ds`` with ``cfg.image_column`` upscaled by a pool of actors."""
    return ds.map_batches(
        Upscaler,
        fn_constructor_kwargs={"cfg": cfg.model_dump()},
        batch_size=cfg.batch_size,
        batch_format="numpy",
        concurrency=cfg.actors.count,
        **ray_resources(cfg),
    )
