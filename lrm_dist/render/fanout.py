"""The Ray fan-out: a self-healing pool of Blender actors, with optional upscale actors behind it.

The driver keeps one asset in flight per render actor and owns every retry decision (Ray's own actor
restarts are off, so nothing is retried behind its back):
* an asset past ``timeout_s`` -> its actor is killed and replaced, the asset retried;
* an actor that dies (crash, node lost) -> replaced, its asset retried;
* a bad input (``AssetInputError``, import failure) -> failed at once, no retry;
* after ``retries`` retries -> failed with the last reason;
* an actor that served ``recycle_after`` assets -> replaced (bounds Blender's memory growth).
Replacement actors that cannot be placed (no capacity left) simply stay pending; the job finishes
on the actors that are alive, and fails only when none has been up for ``start_timeout_s``, or at
once when an actor cannot start on its node (``preflight``: no bpy, another Blender, no GPU for a GPU
device; an error in the actor's ``__init__``) before any has come up.
Results reach the driver as encoded tar members; with upscaling on, the raw views go from the
render actor's output straight to an upscale actor (object refs, no driver copy, no shared files).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from lrm_dist.geometry.limits import MAX_FILE_MB
from lrm_dist.log import get_logger
from lrm_dist.render.config import RenderConfig
from lrm_dist.shards.config import ShardsConfig

log = get_logger(__name__)


@dataclass
class Outcome:
    """The end of one asset: rendered (``members`` holds its tar members) or failed (``reason``)."""

    asset_id: str
    ok: bool
    attempts: int
    members: dict[str, bytes] | None = None
    reason: str | None = None
    seconds: float | None = None
    n_views: int | None = None


def add_occupancy(sample: dict, record: dict, resolution: int) -> None:
    """Attach the ground-truth occupancy grid of the record's canonical mesh (``mesh_path``) to a sample.

    Without a mesh path (or with ``resolution`` 0) the sample goes without; training then skips the
    occupancy term for it. A mesh that cannot be read or has no triangles also goes without, with
    the reason in ``meta["occupancy_skipped"]`` (the renders themselves are still good).
    """
    import numpy as np

    from lrm_dist.geometry.mesh_io import load_mesh
    from lrm_dist.geometry.occupancy import occupancy_grid

    mesh_path = record.get("mesh_path")
    if resolution <= 0 or not mesh_path:
        return
    try:  # the same checked loader as every other mesh: confined references, bounded size
        from lrm_dist.storage import local_file

        with local_file(mesh_path) as local:  # a local copy of an object-store workdir's mesh
            mesh = load_mesh(local)
    except Exception as exc:  # unreadable ground truth: keep the renders, skip the labels
        sample["meta"]["occupancy_skipped"] = f"{mesh_path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return
    sample["occupancy"] = occupancy_grid(np.asarray(mesh.vertices), np.asarray(mesh.faces), resolution)
    sample["meta"]["occupancy_resolution"] = resolution
    sample["meta"]["occupancy_fraction"] = round(float(sample["occupancy"].mean()), 5)


class RenderWorker:
    """Body of a render actor: one Blender in this process, created on ``ready()``."""

    def __init__(self, cfg: dict, settings_hash: str, threads: int, encode: bool, max_file_mb: float = MAX_FILE_MB,
                 shards: dict | None = None):
        self.cfg = RenderConfig.model_validate(cfg)
        self.settings_hash, self.threads, self.encode, self.max_file_mb = settings_hash, threads, encode, max_file_mb
        self.shards = ShardsConfig.model_validate(shards or {})  # how the members are encoded
        self.renderer = None

    def ready(self) -> dict:
        """Open Blender once, after checking this node can render (``RenderSetupError`` when it cannot)."""
        from lrm_dist.render.blender_worker import BlenderRenderer
        from lrm_dist.render.preflight import check_blender

        if self.renderer is None:
            check_blender(self.cfg)
            self.renderer = BlenderRenderer(self.cfg, self.settings_hash, self.threads, self.max_file_mb)
        return {"pid": os.getpid(), "blender": self.renderer.version}

    def render(self, record: dict, attempt: int) -> tuple[dict, object]:
        """Returns (status, payload): payload is the tar members (``encode``) or the raw sample."""
        from lrm_dist.render.blender_worker import quiet_stdout
        from lrm_dist.render.inputs import AssetInputError
        from lrm_dist.shards.sample import encode_sample

        self.ready()
        start = time.perf_counter()
        status = {"asset_id": record["asset_id"], "ok": False, "retryable": False, "reason": None, "pid": os.getpid()}
        try:
            with quiet_stdout():
                sample = self.renderer.render(record)
            sample["meta"]["attempts"] = attempt
            add_occupancy(sample, record, self.cfg.occupancy_resolution)
            payload = encode_sample(sample, self.shards) if self.encode else sample
        except AssetInputError as exc:
            status["reason"] = str(exc)
            return status, None
        except Exception as exc:  # a render that breaks for another reason may pass on a fresh process
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            status.update(retryable=True, reason=f"{type(exc).__name__}: {first}")
            return status, None
        status.update(ok=True, seconds=time.perf_counter() - start, n_views=len(sample["rgba"]))
        return status, payload


class UpscaleWorker:
    """Body of an upscale actor: upscales a sample's rgba views, scales the intrinsics, encodes."""

    def __init__(self, upscale_cfg: dict, shards: dict | None = None):
        from lrm_dist.upscale.actor import Upscaler

        self.upscaler = Upscaler(upscale_cfg)
        self.shards = ShardsConfig.model_validate(shards or {})

    def ready(self) -> bool:
        return True

    def process(self, sample: dict) -> dict[str, bytes]:
        import numpy as np

        from lrm_dist.shards.sample import encode_sample

        rgba = list(sample["rgba"])
        out = self.upscaler.upscale_images(rgba)
        scale = out[0].shape[1] / rgba[0].shape[1]
        intrinsics = np.array(sample["intrinsics"], dtype=np.float64)
        intrinsics[:, :4] *= scale
        intrinsics[:, 4] = out[0].shape[1]
        intrinsics[:, 5] = out[0].shape[0]
        meta = dict(sample["meta"], upscaled=True, render_resolution=sample["meta"]["resolution"],
                    resolution=int(out[0].shape[1]))
        return encode_sample(dict(sample, rgba=np.stack(out), intrinsics=intrinsics, meta=meta), self.shards)


def _setup_failure(exc: Exception) -> str | None:
    """One line for a render actor that cannot start on its node (a failed preflight, an error in its
    ``__init__``), None for a failure a fresh actor may not have (a lost node, a crash)."""
    from ray.exceptions import RayActorError

    from lrm_dist.render.preflight import RenderSetupError

    cause = getattr(exc, "cause", None)  # a RayTaskError carries the exception raised in the actor
    if isinstance(cause, RenderSetupError):
        return str(cause)
    if isinstance(exc, RayActorError) and exc.actor_init_failed:  # only the traceback text crosses: its last line
        lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
        return f"its __init__ raised {lines[-1][:300]}" if lines else "its __init__ raised"
    return None


@dataclass
class _Slot:
    actor: object
    ready_ref: object | None
    served: int = 0
    task: tuple | None = None  # (status_ref, payload_ref, record, attempt, deadline)
    info: dict = field(default_factory=dict)


def actor_count(cfg: RenderConfig, upscale_cfg=None) -> int:
    """``cfg.actors.count`` or, when 0, how many actors the cluster's resources fit beside the upscalers."""
    import ray

    if cfg.actors.count:
        return cfg.actors.count
    total = dict(ray.cluster_resources())
    if upscale_cfg is not None and upscale_cfg.enabled:
        from lrm_dist.upscale.actor import ray_resources

        reserved = ray_resources(upscale_cfg)
        total["CPU"] = total.get("CPU", 0.0) - upscale_cfg.actors.count * reserved["num_cpus"]
        total["GPU"] = total.get("GPU", 0.0) - upscale_cfg.actors.count * reserved["num_gpus"]
    need = {"CPU": cfg.actors.num_cpus, "GPU": cfg.actors.num_gpus, **cfg.actors.resources}
    fits = [math.floor(total.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0]
    return max(1, min(fits)) if fits else 1


class RenderFleet:
    """Drives assets through render (and upscale) actors; ``run(records)`` yields an ``Outcome`` per asset."""

    def __init__(self, cfg: RenderConfig, settings_hash: str, upscale_cfg=None, n_actors: int | None = None,
                 worker_cls: type = RenderWorker, max_file_mb: float = MAX_FILE_MB, shards: ShardsConfig | None = None):
        import ray

        self.ray = ray
        self.cfg = cfg
        self.upscale = upscale_cfg if upscale_cfg is not None and upscale_cfg.enabled else None
        self.n_actors = n_actors or actor_count(cfg, self.upscale)
        threads = max(1, round(cfg.actors.num_cpus))
        self._remote = ray.remote(worker_cls).options(
            num_cpus=cfg.actors.num_cpus, num_gpus=cfg.actors.num_gpus, resources=dict(cfg.actors.resources) or None,
            max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD",
        )
        self._shards = (shards or ShardsConfig()).model_dump(mode="json")  # the members' encoding
        self._args = (cfg.model_dump(mode="json"), settings_hash, threads, self.upscale is None, max_file_mb, self._shards)
        self.slots: list[_Slot] = []
        self.upscalers: list = []
        self.replaced = 0
        self.started = 0  # render actors that came up
        self._next_upscaler = 0

    # -- actors -------------------------------------------------------------------------------------
    def _spawn(self) -> _Slot:
        actor = self._remote.remote(*self._args)
        return _Slot(actor=actor, ready_ref=actor.ready.remote())

    def _replace(self, slot: _Slot, why: str) -> None:
        log.info("replacing render actor (%s)", why)
        self.ray.kill(slot.actor, no_restart=True)
        self.replaced += 1
        self.slots[self.slots.index(slot)] = self._spawn()

    def _start_upscalers(self) -> None:
        from lrm_dist.upscale.actor import ray_resources

        remote = self.ray.remote(UpscaleWorker).options(
            max_restarts=-1, max_task_retries=-1, **ray_resources(self.upscale))
        self.upscalers = [remote.remote(self.upscale.model_dump(mode="json"), self._shards)
                          for _ in range(self.upscale.actors.count)]

    def _await_upscalers(self) -> None:
        try:  # a broken upscaler (weights, device) is a configuration error: stop before rendering
            self.ray.get([a.ready.remote() for a in self.upscalers], timeout=self.cfg.actors.start_timeout_s)
        except Exception as exc:
            self.shutdown()
            raise RuntimeError(f"upscale actors failed to start: {str(exc).strip().splitlines()[-1][:300]}") from None

    def shutdown(self) -> None:
        for actor in [s.actor for s in self.slots] + self.upscalers:
            self.ray.kill(actor, no_restart=True)
        self.slots, self.upscalers = [], []

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, records: list[dict]) -> Iterator[Outcome]:
        ray, cfg = self.ray, self.cfg
        queue: deque[tuple[dict, int]] = deque((r, 1) for r in records)
        upscaling: dict = {}  # upscale ref -> (record, attempt, status)
        if self.upscale is not None:  # placed first, so render actors cannot take all the capacity
            self._start_upscalers()
        self.slots = [self._spawn() for _ in range(min(self.n_actors, max(1, len(records))))]
        if self.upscale is not None:
            self._await_upscalers()
        last_alive = time.monotonic()
        try:
            while queue or upscaling or any(s.task for s in self.slots):
                now = time.monotonic()
                for slot in self.slots:
                    if slot.ready_ref is None and slot.task is None and queue:
                        record, attempt = queue.popleft()
                        status_ref, payload_ref = slot.actor.render.options(num_returns=2).remote(record, attempt)
                        slot.task = (status_ref, payload_ref, record, attempt, now + cfg.timeout_s)
                if any(s.ready_ref is None for s in self.slots):
                    last_alive = now
                elif now - last_alive > cfg.actors.start_timeout_s:
                    raise RuntimeError(f"no render actor came up in {cfg.actors.start_timeout_s:.0f} s "
                                       f"(cluster resources: {ray.cluster_resources()})")
                watch = {s.ready_ref: s for s in self.slots if s.ready_ref is not None}
                watch.update({s.task[0]: s for s in self.slots if s.task is not None})
                refs = list(watch) + list(upscaling)
                deadlines = [s.task[4] for s in self.slots if s.task is not None]
                wait_s = max(0.05, min([1.0] + [d - now for d in deadlines]))
                ready, _ = ray.wait(refs, num_returns=1, timeout=wait_s) if refs else ([], [])
                for ref in ready:
                    if ref in upscaling:
                        yield from self._finish_upscale(ref, upscaling.pop(ref), queue)
                    elif watch[ref].ready_ref is ref:
                        self._on_ready(watch[ref])
                    else:
                        yield from self._finish_render(watch[ref], queue, upscaling)
                for slot in list(self.slots):
                    if slot.task is not None and time.monotonic() > slot.task[4]:
                        record, attempt = slot.task[2], slot.task[3]
                        slot.task = None
                        self._replace(slot, f"asset {record['asset_id']} timed out after {cfg.timeout_s:.0f} s")
                        yield from self._retry(queue, record, attempt, f"timed out after {cfg.timeout_s:.0f} s")
        finally:
            self.shutdown()

    def _on_ready(self, slot: _Slot) -> None:
        from lrm_dist.render.preflight import RenderSetupError

        try:
            slot.info = self.ray.get(slot.ready_ref)
            slot.ready_ref = None
            self.started += 1
            log.debug("render actor up: %s", slot.info)
        except Exception as exc:  # the actor could not start (lost node, broken Blender)
            setup = _setup_failure(exc)
            if setup is not None and not self.started:  # no actor can render: say why now, not at start_timeout_s
                raise RenderSetupError(f"no render actor can start: {setup}") from None
            log.warning("render actor failed to start: %s", setup or str(exc).splitlines()[0][:200])
            time.sleep(1.0)  # do not spin on a permanently broken image
            self._replace(slot, "start failure")

    def _retry(self, queue: deque, record: dict, attempt: int, reason: str) -> Iterator[Outcome]:
        if attempt <= self.cfg.retries:
            log.warning("asset %s: %s; retrying (attempt %d)", record["asset_id"], reason, attempt + 1)
            queue.append((record, attempt + 1))
        else:
            yield Outcome(record["asset_id"], ok=False, attempts=attempt, reason=reason)

    def _finish_render(self, slot: _Slot, queue: deque, upscaling: dict) -> Iterator[Outcome]:
        ray = self.ray
        status_ref, payload_ref, record, attempt, _ = slot.task
        slot.task = None
        slot.served += 1
        try:
            status = ray.get(status_ref)
        except Exception as exc:  # the actor died (crash or node lost)
            self._replace(slot, f"actor died on {record['asset_id']}")
            yield from self._retry(queue, record, attempt, f"render actor died: {type(exc).__name__}")
            return
        if slot.served >= self.cfg.actors.recycle_after:
            self._replace(slot, f"recycled after {slot.served} assets")
        if not status["ok"]:
            if status["retryable"]:
                yield from self._retry(queue, record, attempt, status["reason"])
            else:
                yield Outcome(record["asset_id"], ok=False, attempts=attempt, reason=status["reason"])
            return
        if self.upscale is not None:
            self._next_upscaler += 1
            actor = self.upscalers[self._next_upscaler % len(self.upscalers)]
            upscaling[actor.process.remote(payload_ref)] = (record, attempt, status)
            return
        try:
            members = ray.get(payload_ref, timeout=max(60.0, self.cfg.timeout_s))
        except Exception as exc:  # the result was lost with its node
            yield from self._retry(queue, record, attempt, f"render result lost: {type(exc).__name__}")
            return
        yield Outcome(record["asset_id"], True, attempt, members, seconds=status["seconds"], n_views=status["n_views"])

    def _finish_upscale(self, ref, item: tuple, queue: deque) -> Iterator[Outcome]:
        record, attempt, status = item
        try:
            members = self.ray.get(ref)
        except Exception as exc:
            reason = f"upscale failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            yield from self._retry(queue, record, attempt, reason)
            return
        yield Outcome(record["asset_id"], True, attempt, members, seconds=status["seconds"], n_views=status["n_views"])
