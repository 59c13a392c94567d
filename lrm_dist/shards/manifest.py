"""The render manifest (``render.parquet``, one row per asset) and the shard index (``shards.parquet``).

The render job's resume logic reads only these two files plus the shard files themselves; both are
rewritten whole and atomically after every shard is committed.
"""

from __future__ import annotations

import pyarrow as pa

from lrm_dist.parquet import read_rows, write_table
from lrm_dist.schema import RENDER_SCHEMA, SHARD_INDEX_SCHEMA
from lrm_dist.layout import RENDER_MANIFEST, SHARD_INDEX, SHARDS_DIR
from lrm_dist.storage import Storage

__all__ = ["RENDER_MANIFEST", "SHARD_INDEX", "SHARDS_DIR", "load_index", "load_rows", "read_render_manifest",
           "save_index", "save_rows", "shard_urls"]


def _read(storage: Storage, name: str, schema: pa.Schema) -> list[dict]:
    if not storage.exists(name):
        return []
    return read_rows(storage, name, schema, f"a {schema.metadata[b'lrm_dist.schema'].decode()} manifest")


def _write(storage: Storage, name: str, rows: list[dict], schema: pa.Schema, sort_key: str) -> None:
    write_table(storage, name, sorted(rows, key=lambda r: r[sort_key]), schema)


def read_render_manifest(render_url: str) -> pa.Table:
    """The render manifest of ``<workdir>/render`` as an Arrow table (``RENDER_SCHEMA``; empty if none yet)."""
    rows = _read(Storage(render_url), RENDER_MANIFEST, RENDER_SCHEMA)
    return pa.Table.from_pylist(rows, schema=RENDER_SCHEMA)


def load_rows(storage: Storage) -> dict[str, dict]:
    return {r["asset_id"]: r for r in _read(storage, RENDER_MANIFEST, RENDER_SCHEMA)}


def save_rows(storage: Storage, rows: dict[str, dict]) -> None:
    _write(storage, RENDER_MANIFEST, list(rows.values()), RENDER_SCHEMA, "asset_id")


def load_index(storage: Storage) -> dict[str, dict]:
    return {r["shard"]: r for r in _read(storage, SHARD_INDEX, SHARD_INDEX_SCHEMA)}


def save_index(storage: Storage, index: dict[str, dict]) -> None:
    _write(storage, SHARD_INDEX, list(index.values()), SHARD_INDEX_SCHEMA, "shard")


def shard_urls(render_url: str, only_done: bool = True) -> list[str]:
    """URLs of the shards a render manifest lists (those holding done assets), sorted."""
    storage = Storage(render_url)
    rows = load_rows(storage).values()
    names = sorted({r["shard"] for r in rows if r["shard"] and (r["status"] == "done" or not only_done)})
    return [storage.url_of(f"{SHARDS_DIR}/{n}") for n in names]
