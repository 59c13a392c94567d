"""Reading and writing the asset manifest (Parquet, ``lrm_dist.schema.ASSET_SCHEMA``), atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from lrm_dist.parquet import at, read_table, write_table
from lrm_dist.schema import ASSET_SCHEMA
from lrm_dist.layout import ASSETS_MANIFEST as MANIFEST_NAME
from lrm_dist.layout import workdir_of_assets_manifest
from lrm_dist.storage import is_url

__all__ = ["MANIFEST_NAME", "read_asset_manifest", "replace_atomically", "write_asset_manifest"]


def replace_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write`` on a temporary name unique to this call beside ``path``, then rename it into place.

    A crash never leaves half a file, and runs racing on the same output never share a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# Columns holding file paths. Inside the manifest they are relative to the workdir (the folder above
# ``assets/``) when the file lives in it, else absolute, so a workdir can be moved, shared and read
# from any current folder; readers get them resolved.
PATH_COLUMNS = ("uri", "mesh_path")


def _resolved(rows: list[dict], manifest: str | Path) -> list[dict]:
    """Rows with their workdir-relative path columns made absolute (or URLs) for this manifest's workdir."""
    workdir = workdir_of_assets_manifest(str(manifest))

    def resolve(value: str | None) -> str | None:
        if not value or "://" in value or os.path.isabs(value):
            return value
        return f"{workdir}/{value}" if "://" in workdir else os.path.join(workdir, value)

    return [{**r, **{c: resolve(r.get(c)) for c in PATH_COLUMNS if c in r}} for r in rows]


def _relative(rows: list[dict], manifest: str | Path) -> list[dict]:
    workdir = workdir_of_assets_manifest(str(manifest))

    def relative(value: str | None) -> str | None:
        if value and "://" in value and value.startswith(workdir.rstrip("/") + "/"):
            return value[len(workdir.rstrip("/")) + 1:]  # an object in an object-store workdir
        if not value or "://" in value:
            return value
        if "://" in workdir:  # a local file listed in an object-store workdir's manifest: absolute
            return os.path.abspath(value)
        if ".." not in Path(value).parts:  # a path with '..' is kept as written, for the render's check to see
            inside = os.path.relpath(os.path.abspath(value), workdir)
            if inside != ".." and not inside.startswith(".." + os.sep):
                return inside
        return value if os.path.isabs(value) else os.path.join(os.getcwd(), value)

    return [{**r, **{c: relative(r.get(c)) for c in PATH_COLUMNS if c in r}} for r in rows]


def write_asset_manifest(rows: list[dict], path: str | Path) -> str | Path:
    """Write rows to ``path`` (a local path or an object-store URL) through a temporary file, so a crash
    never leaves half a manifest.

    Paths are stored relative to the workdir when inside it (see ``PATH_COLUMNS``)."""
    table = pa.Table.from_pylist(_relative(rows, path), schema=ASSET_SCHEMA)
    write_table(*at(path), table, ASSET_SCHEMA)
    return path if is_url(path) else Path(path)


def read_asset_manifest(path: str | Path, only_ok: bool = False) -> pa.Table:
    """Read an asset manifest (a local path or URL; schema checked), paths resolved; ``only_ok`` drops rejected assets."""
    try:
        table = read_table(*at(path), ASSET_SCHEMA, "an asset manifest")
    except FileNotFoundError:
        raise FileNotFoundError(f"asset manifest not found: {path} (run `lrm-dist assets` first)") from None
    if only_ok:
        table = table.filter(pa.compute.equal(table["status"], "ok"))
    return pa.Table.from_pylist(_resolved(table.to_pylist(), path), schema=ASSET_SCHEMA)
