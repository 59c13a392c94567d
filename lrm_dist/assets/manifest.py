"""Reading and writing the asset manifest (Parquet, ``lrm_dist.schema.ASSET_SCHEMA``), atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lrm_dist.schema import ASSET_SCHEMA

MANIFEST_NAME = "assets.parquet"


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


def write_asset_manifest(rows: list[dict], path: str | Path) -> Path:
    """Write rows to ``path`` through a temporary file, so a crash never leaves half a manifest."""
    table = pa.Table.from_pylist(rows, schema=ASSET_SCHEMA)
    return replace_atomically(path, lambda tmp: pq.write_table(table, tmp))


def read_asset_manifest(path: str | Path, only_ok: bool = False) -> pa.Table:
    """Read an asset manifest (checking its schema); ``only_ok`` drops rejected assets."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"asset manifest not found: {path} (run `lrm-dist assets` first)")
    table = pq.read_table(path)
    missing = set(ASSET_SCHEMA.names) - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: not an asset manifest (missing columns {sorted(missing)})")
    table = table.select(ASSET_SCHEMA.names).cast(ASSET_SCHEMA)
    if only_ok:
        table = table.filter(pa.compute.equal(table["status"], "ok"))
    return table
