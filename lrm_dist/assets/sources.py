"""Asset sources: each lists candidates (id, category, file) for the asset stage to check and record.

Every source yields the same ``Candidate``; a candidate that cannot even be listed properly (e.g. an
unknown category label) is yielded with its rejection reason so the manifest records it.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrm_dist.assets.categories import CATEGORIES, LVIS_NAMES
from lrm_dist.assets.config import LocalSource, ObjaverseSource, ProceduralSource
from lrm_dist.assets.manifest import replace_atomically
from lrm_dist.geometry.frame import UP_AXIS_BY_SUFFIX
from lrm_dist.geometry.mesh_io import MESH_SUFFIXES
from lrm_dist.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Candidate:
    """An asset before checking: where its file is and what it is said to be."""

    asset_id: str
    source: str
    category: str
    uri: str
    up_axis: str
    reason: str | None = None  # set when the source already knows it is unusable


def safe_asset_id(text: str) -> str:
    """An asset id from any text: letters, digits, '-' and '_' only (WebDataset keys allow no dots)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "asset"


def procedural_asset_id(src: ProceduralSource, category: str, index: int) -> str:
    """``proc-<category>-s<seed>-<index>`` for the blocks style, ``<style>-...`` (``shaped-``, ``curved-``) for the others."""
    prefix = "proc" if src.style == "blocks" else src.style
    return f"{prefix}-{category}-s{src.seed}-{index:05d}"


def iter_procedural(src: ProceduralSource, out_dir: Path | str) -> Iterator[Candidate]:
    """Generate the procedural pieces as GLBs under ``out_dir`` (skipping ones already written); an
    object-store ``out_dir`` gets each GLB written locally, then uploaded."""
    from lrm_dist.assets.procedural import generate_furniture, write_procedural_glb
    from lrm_dist.storage import is_url

    if is_url(out_dir):
        yield from _iter_procedural_remote(src, str(out_dir))
        return
    out_dir = Path(out_dir)
    for category in src.categories:
        for index in range(src.per_category):
            asset_id = procedural_asset_id(src, category, index)
            path = out_dir / category / f"{asset_id}.glb"
            if not path.is_file():
                mesh = generate_furniture(category, index, seed=src.seed, colors=src.colors, style=src.style)
                replace_atomically(path, lambda tmp, mesh=mesh: write_procedural_glb(mesh, tmp))
            yield Candidate(asset_id, "procedural", category, str(path), "y")


def _iter_procedural_remote(src: ProceduralSource, out_url: str) -> Iterator[Candidate]:
    import tempfile

    from lrm_dist.assets.procedural import generate_furniture, write_procedural_glb
    from lrm_dist.storage import Storage

    store = Storage(out_url)
    with tempfile.TemporaryDirectory(prefix="lrm-procedural-") as tmp:
        for category in src.categories:
            for index in range(src.per_category):
                asset_id = procedural_asset_id(src, category, index)
                name = f"{category}/{asset_id}.glb"
                if not store.isfile(name):
                    mesh = generate_furniture(category, index, seed=src.seed, colors=src.colors, style=src.style)
                    local = os.path.join(tmp, f"{asset_id}.glb")
                    write_procedural_glb(mesh, local)
                    store.put_file_atomic(local, name)
                yield Candidate(asset_id, "procedural", category, store.url_of(name), "y")


def _labels_from_file(root: Path, labels: str) -> dict[str, str]:
    path = root / labels
    if not path.is_file():
        raise FileNotFoundError(f"local source labels file not found: {path}")
    if path.suffix.lower() == ".parquet":
        from lrm_dist.parquet import at, read_table

        table = read_table(*at(path)).to_pydict()
        rows = zip(table.get("file", []), table.get("category", []))
    else:
        with open(path, newline="") as fh:
            rows = [(r.get("file"), r.get("category")) for r in csv.DictReader(fh)]
    out = {}
    for file, category in rows:
        if not file or not category:
            raise ValueError(f"{path}: every row needs 'file' and 'category' columns")
        out[str(Path(file))] = str(category)
    return out


def local_asset_id(rel: Path) -> str:
    """A local file's id: its cleaned relative path plus a hash of the exact one, so no two files share it."""
    digest = hashlib.sha1(rel.as_posix().encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"local-{safe_asset_id(str(rel.with_suffix('')).replace(os.sep, '-'))}-{digest}"


def _local_paths(root: Path) -> tuple[list[Path], list[Path]]:
    """Mesh files under ``root`` and the symlinked entries (files or folders) that resolve outside it."""
    real_root = Path(os.path.realpath(root))
    files, outside = [], []
    for folder, dirs, names in os.walk(root):  # symlinked folders are listed in ``dirs`` but not entered
        for name in dirs + names:
            path = Path(folder) / name
            is_mesh = name in names and path.suffix.lower() in MESH_SUFFIXES
            if (path.is_symlink() and (is_mesh or name in dirs)
                    and not Path(os.path.realpath(path)).is_relative_to(real_root)):
                outside.append(path)
            elif is_mesh and path.is_file():
                files.append(path)
    return sorted(files), sorted(outside)


def iter_local(src: LocalSource) -> Iterator[Candidate]:
    """Mesh files under ``src.path``; category from ``labels`` when given, else the first sub-folder.

    A symlinked file or folder that resolves outside ``src.path`` is listed as rejected, never read.
    """
    root = Path(src.path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"local source folder not found: {root}")
    labels = _labels_from_file(root, src.labels) if src.labels else None
    files, outside = _local_paths(root)
    if not files and not outside:
        log.warning("local source %s holds no %s files", root, "/".join(MESH_SUFFIXES))
    for path in outside:
        rel = path.relative_to(root)
        category = rel.parts[0] if len(rel.parts) > 1 else ""
        reason = f"{path}: symlink resolving outside the source folder {root}"
        yield Candidate(local_asset_id(rel), "local", category, str(path), "", reason)
    for path in files:
        rel = path.relative_to(root)
        if labels is not None:
            category = labels.get(str(rel), "")
        else:
            category = rel.parts[0] if len(rel.parts) > 1 else ""
        reason = None
        if not category:
            reason = f"{path}: no category (put it in a category sub-folder or list it in the labels file)"
        elif category not in CATEGORIES:
            reason = f"{path}: unknown category {category!r} (known: {', '.join(CATEGORIES)})"
        elif category not in src.categories:
            continue
        up_axis = UP_AXIS_BY_SUFFIX[path.suffix.lower()]
        yield Candidate(local_asset_id(rel), "local", category, str(path), up_axis, reason)


def configure_objaverse(cache_dir: str):
    """Import ``objaverse`` with its cache at ``cache_dir`` (it reads ~/.objaverse at import)."""
    import objaverse

    base = str(Path(cache_dir).expanduser())
    objaverse.BASE_PATH = base
    objaverse._VERSIONED_PATH = os.path.join(base, "hf-objaverse-v1")
    return objaverse


def select_objaverse_uids(src: ObjaverseSource, lvis: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Pick (uid, category) pairs from LVIS annotations: seeded, at most ``per_category`` each."""
    rng = np.random.default_rng(src.seed)
    picked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for category in src.categories:
        uids = sorted({u for name in LVIS_NAMES[category] for u in lvis.get(name, [])} - seen)
        rng.shuffle(uids)
        chosen = uids if src.per_category is None else uids[: src.per_category]
        seen.update(chosen)
        picked.extend((uid, category) for uid in chosen)
    return picked


def iter_objaverse(src: ObjaverseSource) -> Iterator[Candidate]:
    """Objaverse objects of our categories, downloaded (or found) in the configured cache."""
    objaverse = configure_objaverse(src.cache_dir)
    lvis = objaverse.load_lvis_annotations()
    picked = select_objaverse_uids(src, lvis)
    log.info("objaverse: %d objects selected from LVIS for %s", len(picked), ", ".join(src.categories))
    paths = objaverse.load_objects([uid for uid, _ in picked], download_processes=src.download_processes)
    for uid, category in picked:
        path = paths.get(uid)
        reason = None if path else f"objaverse object {uid}: not downloaded"
        yield Candidate(f"objaverse-{safe_asset_id(uid)}", "objaverse", category, path or "", "y", reason)
