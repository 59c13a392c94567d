"""Reading and writing the asset manifest (Parquet, ``lrm_dist.schema.ASSET_SCHEMA``), atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lrm_dist.schema import ASSET_SCHEMA

MANIFEST_NAME = "assets.parquet"


def write_asset_manifest(rows: list[dict], path: str | Path) -> Path:
    """Write rows to ``path`` through a temporary file, so a crash never leaves half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=ASSET_SCHEMA)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


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
