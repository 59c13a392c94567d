"""The one way the project reads and writes its Parquet tables (manifests, shard index, eval tables).

``read_table`` reads a whole table through ``lrm_dist.storage`` (a local folder or any fsspec URL) and,
given a schema, checks its columns and returns exactly the schema's columns and types; ``write_table``
serialises rows (or a table) to Parquet in memory first, then writes the file atomically
(``Storage.write_bytes_atomic``: a temporary name, then a move), so a failure never leaves half a
table nor a temporary file. ``at(path)`` turns a file's full path or URL into (folder, name).
"""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq

from lrm_dist.images import one_line
from lrm_dist.storage import Storage, is_url


def at(path: str | os.PathLike) -> tuple[Storage, str]:
    """(the folder ``Storage``, the file name) of a table's local path or URL."""
    text = str(path)
    if is_url(text):
        folder, _, name = text.rstrip("/").rpartition("/")
    else:
        folder, name = os.path.split(os.path.abspath(text.removeprefix("file://")))
    return Storage(folder), name


def _kind(schema: pa.Schema) -> str:
    meta = schema.metadata or {}
    return f"a {meta[b'lrm_dist.schema'].decode()} table" if b"lrm_dist.schema" in meta else "the expected table"


def read_table(storage: Storage, name: str, schema: pa.Schema | None = None, what: str | None = None) -> pa.Table:
    """The table ``name`` of ``storage``; with ``schema``, its columns selected and cast to it.

    A missing file raises ``FileNotFoundError``; a file that is not Parquet, or lacks a column of
    ``schema``, raises a one-line ``ValueError`` naming the file (``what``: how to call the table there,
    e.g. "a render manifest"; default from the schema's ``lrm_dist.schema`` metadata).
    """
    url = storage.url_of(name)
    try:
        data = storage.read_bytes(name)
    except FileNotFoundError:
        raise FileNotFoundError(f"{url}: no such file") from None
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{url}: not a readable Parquet file ({one_line(exc)})") from None
    if schema is None:
        return table
    missing = set(schema.names) - set(table.column_names)
    if missing:
        raise ValueError(f"{url}: not {what or _kind(schema)} (missing columns {sorted(missing)})")
    return table.select(schema.names).cast(schema)


def read_rows(storage: Storage, name: str, schema: pa.Schema, what: str | None = None) -> list[dict]:
    """``read_table(...).to_pylist()``."""
    return read_table(storage, name, schema, what).to_pylist()


def table_bytes(rows: list[dict] | pa.Table, schema: pa.Schema) -> bytes:
    """Rows (or a table) of ``schema`` as Parquet file bytes."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_table(storage: Storage, name: str, rows: list[dict] | pa.Table, schema: pa.Schema) -> str:
    """Write rows (or a table) of ``schema`` as ``name`` of ``storage``, atomically; returns the file's URL.

    The Parquet bytes are made before any file is opened (rows that do not fit the schema raise and
    leave the old file as it was); a local folder is created when missing."""
    data = table_bytes(rows, schema)
    if storage.is_local:
        parent = os.path.dirname(name)
        storage.makedirs(parent)
    storage.write_bytes_atomic(name, data)
    return storage.url_of(name)


__all__ = ["at", "read_rows", "read_table", "table_bytes", "write_table"]
