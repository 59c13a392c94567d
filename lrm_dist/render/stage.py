"""The render stage: asset manifest -> Ray render (-> upscale) actors -> shards + render manifest, resumable.

``render_assets(cfg)`` opens (and repairs) the shard store, renders only the assets not yet done with
the current settings hash, streams every result into the shard writer, and returns a summary.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lrm_dist.log import get_logger, progress_bar
from lrm_dist.render.settings import render_settings, settings_hash

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig
    from lrm_dist.layout import RunLayout

log = get_logger(__name__)


@dataclass
class RenderSummary:
    """What a render run did."""

    render_dir: str
    settings_hash: str
    assets: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    views: int = 0
    shards: list[str] = field(default_factory=list)
    actors: int = 0
    replaced_actors: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def views_per_s(self) -> float:
        return self.views / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        text = (f"render {self.settings_hash}: {self.done} done, {self.failed} failed, {self.skipped} already done "
                f"(of {self.assets}); {self.views} views in {self.seconds:.1f} s ({self.views_per_s:.2f} views/s) "
                f"on {self.actors} actors ({self.replaced_actors} replaced); "
                f"{len(self.shards)} shards -> {self.render_dir}")
        reasons = Counter(r.split(":")[0] if ":" in r else r for r in self.failures.values())
        if reasons:
            text += "\n  failures: " + "; ".join(f"{n} x {r}" for r, n in reasons.most_common(5))
        return text


def _unique(records: list[dict]) -> list[dict]:
    """One record per asset id (the first): a manifest edited by hand must not render an asset twice."""
    seen: dict[str, dict] = {}
    for r in records:
        if r["asset_id"] in seen:
            log.warning("assets.parquet lists asset %s more than once: rendering the first row only", r["asset_id"])
            continue
        seen[r["asset_id"]] = r
    return list(seen.values())


def _pending(records: list[dict], store, digest: str, limit: int | None) -> list[dict]:
    todo = [r for r in records if not store.is_done(r["asset_id"], digest)]
    return todo[:limit] if limit else todo


def _actors_run_here(ray_cfg) -> bool:
    """Whether the render actors share the driver's machine: a local Ray (started or to start), not a joined cluster."""
    import ray

    if ray_cfg.address or os.environ.get("RAY_ADDRESS"):
        return False
    if not ray.is_initialized():
        return True
    here = ray.util.get_node_ip_address()
    return all(node["NodeManagerAddress"] == here for node in ray.nodes() if node["Alive"])


def render_assets(cfg: PipelineConfig) -> RenderSummary:
    """Render every ok asset of ``layout().assets_manifest`` into ``layout().render_dir`` (see module doc).

    Holds the render folder's lock: a second render of the same workdir is refused, not interleaved.
    """
    from lrm_dist.locks import run_locked_stage

    return run_locked_stage(cfg, "render", lambda layout: layout.render_dir, _render)


def _render(cfg: PipelineConfig, layout: RunLayout) -> RenderSummary:
    from lrm_dist.assets import read_asset_manifest
    from lrm_dist.ray_utils import init_ray
    from lrm_dist.render.fanout import RenderFleet
    from lrm_dist.render.preflight import check_driver
    from lrm_dist.shards.store import ShardStore, done_row, failed_row

    start = time.perf_counter()
    render_dir = layout.render_dir
    digest = settings_hash(cfg.render, cfg.upscale)
    records = _unique(read_asset_manifest(layout.assets_manifest, only_ok=True).to_pylist())
    store = ShardStore(render_dir, cfg.shards)
    report = store.open()
    store.storage.write_bytes_atomic(
        f"settings-{digest}.json", json.dumps(render_settings(cfg.render, cfg.upscale), indent=1).encode())
    todo = _pending(records, store, digest, cfg.render.limit)
    summary = RenderSummary(render_dir, digest, assets=len(records), skipped=len(records) - len(todo),
                            repaired={k: v for k, v in vars(report).items() if v and k not in ("done", "failed")})
    if summary.repaired:
        log.info("resume repairs: %s", summary.repaired)
    log.info("render %s: %d assets to render, %d already done", digest, len(todo), summary.skipped)
    if todo:
        if _actors_run_here(cfg.ray):  # a missing bpy is one line now, before Ray starts
            check_driver()
        init_ray(cfg.ray)
        fleet = RenderFleet(cfg.render, digest, cfg.upscale, max_file_mb=cfg.assets.max_file_mb, shards=cfg.shards)
        summary.actors = fleet.n_actors
        bar = progress_bar(len(todo), "render", unit="asset")
        stream = fleet.run(todo)
        try:
            for out in stream:
                if out.ok:
                    info = store.add(out.asset_id, out.members,
                                     done_row(out.asset_id, digest, None, out.n_views, out.attempts, out.seconds))
                    summary.done += 1
                    summary.views += out.n_views
                    if info is not None:
                        summary.shards.append(info.shard)
                else:
                    store.fail(failed_row(out.asset_id, digest, out.reason or "unknown", out.attempts))
                    summary.failed += 1
                    summary.failures[out.asset_id] = out.reason or "unknown"
                bar.update(1)
                bar.set_postfix(done=summary.done, failed=summary.failed, refresh=False)
        finally:
            stream.close()  # stops the actors even when the loop body raised
            bar.close()
            summary.replaced_actors = fleet.replaced
            info = store.flush()  # keep what was rendered, even when the job is interrupted
            if info is not None:
                summary.shards.append(info.shard)
    store.close()
    summary.seconds = time.perf_counter() - start
    log.info("%s", summary)
    return summary
