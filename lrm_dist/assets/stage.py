"""The asset stage: list every source's candidates, check and normalise each mesh, write the manifest.

A bad asset never stops the batch: it becomes a ``rejected`` row with a one-line reason. Assets whose
file is unchanged since the last run (same sha256, ground-truth mesh present) are not processed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec

from lrm_dist.assets.manifest import read_asset_manifest, replace_atomically, write_asset_manifest
from lrm_dist.assets.sources import Candidate, iter_local, iter_objaverse, iter_procedural
from lrm_dist.geometry.frame import normalize_mesh, to_z_up
from lrm_dist.geometry.mesh_io import MeshError, asset_files, load_mesh, sha256_file
from lrm_dist.log import get_logger, progress
from lrm_dist.storage import Storage, is_url, local_file

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig
    from lrm_dist.layout import RunLayout

log = get_logger(__name__)


@dataclass
class AssetsSummary:
    """What an asset run produced."""

    manifest: Path | str  # a local path, or the URL of an object-store workdir's manifest
    ok: int = 0
    rejected: int = 0
    reused: int = 0
    per_category: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        cats = ", ".join(f"{k} {v}" for k, v in sorted(self.per_category.items()))
        return (f"assets: {self.ok} ok ({cats}), {self.rejected} rejected, {self.reused} unchanged, "
                f"{self.seconds:.1f} s -> {self.manifest}")


def _empty_row(c: Candidate, reason: str) -> dict:
    return {"asset_id": c.asset_id, "source": c.source, "category": c.category, "uri": c.uri,
            "up_axis": c.up_axis, "status": "rejected", "reason": reason}


def process_candidate(c: Candidate, mesh_dir: str, max_faces: int, max_file_mb: float) -> dict:
    """Check one candidate and write its normalised ground-truth mesh; returns its manifest row.

    ``c.uri`` and ``mesh_dir`` may be object-store URLs: the file is checked in a local copy and the
    mesh written locally, then uploaded."""
    if c.reason:
        return _empty_row(c, c.reason)
    try:
        with local_file(c.uri) as path:
            sha = sha256_file(path)
            mesh = load_mesh(path, max_faces=max_faces, max_file_mb=max_file_mb)
        z_up = to_z_up(mesh, c.up_axis)
        canonical, norm = normalize_mesh(z_up)
        out = _write_mesh(canonical, mesh_dir, f"{c.asset_id}.ply")
    except (MeshError, FileNotFoundError, OSError, ValueError) as exc:
        return _empty_row(c, str(exc).splitlines()[0])
    return {
        "asset_id": c.asset_id, "source": c.source, "category": c.category, "uri": c.uri, "up_axis": c.up_axis,
        "sha256": sha, "n_vertices": len(mesh.vertices), "n_faces": len(mesh.faces),
        "bounds": [float(v) for v in z_up.bounds.reshape(-1)], "norm_center": list(norm.center),
        "norm_scale": norm.scale, "watertight": bool(canonical.is_watertight), "mesh_path": str(out),
        "status": "ok", "reason": None,
    }


def _write_mesh(mesh, mesh_dir: str, name: str) -> str | Path:
    """Write ``mesh`` as PLY to ``mesh_dir/name`` atomically (uploaded when ``mesh_dir`` is a URL)."""
    if not is_url(mesh_dir):
        return replace_atomically(Path(mesh_dir) / name, lambda tmp: mesh.export(tmp, file_type="ply"))
    with tempfile.TemporaryDirectory(prefix="lrm-mesh-") as tmp:
        local = os.path.join(tmp, name)
        mesh.export(local, file_type="ply")
        store = Storage(mesh_dir)
        store.put_file_atomic(local, name)
        return store.url_of(name)


def _candidates(cfg: PipelineConfig, layout: RunLayout):
    for src in cfg.assets.sources:
        if src.kind == "procedural":
            procedural = layout.procedural_dir
            yield from iter_procedural(src, procedural if is_url(procedural) else Path(procedural))
        elif src.kind == "local":
            yield from iter_local(src)
        else:
            yield from iter_objaverse(src)


def unique_candidates(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per file, each with its own id.

    A file listed twice (overlapping sources, a symlink to a listed file) is kept once, under its own
    name rather than a link's; a distinct file whose id is taken gets the id plus a hash of its uri.
    """
    def real(c: Candidate) -> str | None:
        if not c.uri or c.reason:
            return None
        return c.uri if is_url(c.uri) else os.path.realpath(c.uri)

    direct = {real(c) for c in candidates if real(c) and not os.path.islink(c.uri)}
    kept: list[Candidate] = []
    ids: set[str] = set()
    files: dict[str, str] = {}
    for c in candidates:
        file = real(c)
        if file in files or (file in direct and os.path.islink(c.uri)):
            log.warning("%s is the same file as another listed asset: listed once", c.uri)
            continue
        while c.asset_id in ids:
            digest = hashlib.sha1(f"{c.asset_id}\0{c.uri}".encode("utf-8", "surrogateescape")).hexdigest()[:8]
            log.warning("asset id %s is taken: %s gets %s-%s", c.asset_id, c.uri, c.asset_id, digest)
            c = dataclasses.replace(c, asset_id=f"{c.asset_id}-{digest}")
        if file is not None:
            files[file] = c.asset_id
        ids.add(c.asset_id)
        kept.append(c)
    return kept


def _reusable(previous: dict[str, dict], c: Candidate, max_file_mb: float) -> dict | None:
    """The previous ok row when its file is unchanged and its references still pass the folder check."""
    row = previous.get(c.asset_id)
    if c.reason or not row or row["status"] != "ok" or not _same_file(row["uri"] or "", c.uri):
        return None
    if not _is_file(row["mesh_path"] or ""):
        return None
    try:  # the sha covers the mesh file only: a material or texture may have changed since
        with local_file(c.uri) as path:
            return row if sha256_file(path) == row["sha256"] and asset_files(path, max_file_mb) else None
    except (OSError, MeshError):
        return None


def _same_file(a: str, b: str) -> bool:
    return a == b if is_url(a) or is_url(b) else os.path.abspath(a) == os.path.abspath(b)


def _is_file(path: str) -> bool:
    if is_url(path):
        fs, inner = fsspec.core.url_to_fs(path)
        return fs.isfile(inner)
    return bool(path) and Path(path).is_file()


def build_assets(cfg: PipelineConfig) -> AssetsSummary:
    """Run the asset stage: check and normalise every source's assets into ``layout().assets_manifest``.

    Holds the assets folder's lock: a second asset job on the same workdir is refused.
    """
    from lrm_dist.locks import run_locked_stage

    return run_locked_stage(cfg, "assets", lambda layout: layout.assets_dir, _build_assets)


def _build_assets(cfg: PipelineConfig, layout: RunLayout) -> AssetsSummary:
    start = time.perf_counter()
    remote = is_url(layout.assets_dir)  # an object-store workdir: URLs, files uploaded when finished
    manifest = layout.assets_manifest if remote else Path(layout.assets_manifest)
    previous = {}
    if _is_file(str(manifest)):
        previous = {r["asset_id"]: r for r in read_asset_manifest(manifest).to_pylist()}
    candidates = unique_candidates(list(progress(_candidates(cfg, layout), desc="listing assets", unit="asset")))
    rows: dict[str, dict] = {}
    todo: list[Candidate] = []
    summary = AssetsSummary(manifest=manifest)
    for c in candidates:
        reuse = _reusable(previous, c, cfg.assets.max_file_mb)
        if reuse is not None:
            rows[c.asset_id] = reuse
            summary.reused += 1
        else:
            todo.append(c)
    meshes = layout.meshes_dir if remote else str(Path(layout.meshes_dir))
    limits = (meshes, cfg.assets.max_faces, cfg.assets.max_file_mb)
    for row in _process_all(todo, limits, cfg):
        rows[row["asset_id"]] = row
        if row["status"] == "rejected":
            log.warning("rejected %s: %s", row["asset_id"], row["reason"])
    ordered = [rows[c.asset_id] for c in candidates]
    write_asset_manifest(ordered, manifest)
    counts = Counter(r["category"] for r in ordered if r["status"] == "ok")
    summary.ok = sum(counts.values())
    summary.rejected = len(ordered) - summary.ok
    summary.per_category = dict(counts)
    summary.seconds = time.perf_counter() - start
    log.info("%s", summary)
    return summary


def _process_all(todo: list[Candidate], limits: tuple, cfg: PipelineConfig):
    """Process candidates here (``workers=0``) or as Ray tasks, ``workers`` at a time."""
    if cfg.assets.workers == 0 or not todo:
        for c in progress(todo, desc="checking assets", unit="asset"):
            yield process_candidate(c, *limits)
        return
    import ray

    from lrm_dist.log import progress_bar
    from lrm_dist.ray_utils import init_ray

    init_ray(cfg.ray)
    remote = ray.remote(num_cpus=1)(process_candidate)
    pending: list = []
    bar = progress_bar(len(todo), "checking assets (ray)", unit="asset")
    for c in todo:  # keep ``workers`` tasks in flight, yielding each result as it finishes
        pending.append(remote.remote(c, *limits))
        if len(pending) < cfg.assets.workers:
            continue
        done, pending = ray.wait(pending, num_returns=1)
        bar.update(1)
        yield ray.get(done[0])
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        bar.update(1)
        yield ray.get(done[0])
    bar.close()
