"""The one Parquet table helper (``lrm_dist.parquet``): round trips, schema checks, atomic writes."""

import os

import pyarrow as pa
import pytest

from lrm_dist.parquet import at, read_rows, read_table, write_table
from lrm_dist.storage import Storage

SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("n", pa.int64())],
                   metadata={"lrm_dist.schema": "thing"})
ROWS = [{"id": "a", "n": 1}, {"id": "b", "n": None}]


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_round_trip_local_and_url(tmp_path):
    storage = Storage(str(tmp_path / "out"))
    assert write_table(storage, "sub/t.parquet", ROWS, SCHEMA) == str(tmp_path / "out" / "sub" / "t.parquet")
    assert read_rows(storage, "sub/t.parquet", SCHEMA) == ROWS
    assert read_table(storage, "sub/t.parquet", SCHEMA).schema == SCHEMA
    assert _files(tmp_path) == ["out/sub/t.parquet"]
    remote = Storage("memory://lrm-dist-test-parquet/run")
    write_table(remote, "t.parquet", pa.Table.from_pylist(ROWS, schema=SCHEMA), SCHEMA)
    assert read_rows(*at("memory://lrm-dist-test-parquet/run/t.parquet"), SCHEMA) == ROWS
    assert remote.listdir() == ["t.parquet"]


def test_schema_selects_and_casts_and_names_missing_columns(tmp_path):
    storage = Storage(str(tmp_path))
    wide = pa.schema([("extra", pa.float32()), ("n", pa.int32()), ("id", pa.string())])
    write_table(storage, "w.parquet", [{"extra": 1.5, "n": 3, "id": "x"}], wide)
    assert read_rows(storage, "w.parquet", SCHEMA) == [{"id": "x", "n": 3}]
    assert read_table(storage, "w.parquet").column_names == ["extra", "n", "id"]  # no schema: as stored
    write_table(storage, "short.parquet", [{"id": "x"}], pa.schema([("id", pa.string())]))
    with pytest.raises(ValueError, match=r"short\.parquet: not a thing table \(missing columns \['n'\]\)$"):
        read_table(storage, "short.parquet", SCHEMA)
    with pytest.raises(ValueError, match=r"not a render manifest"):
        read_table(storage, "short.parquet", SCHEMA, "a render manifest")


def test_unreadable_and_missing_files_are_one_line_errors(tmp_path):
    storage = Storage(str(tmp_path))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError) as err:
        read_table(storage, "junk.parquet", SCHEMA)
    assert str(err.value).startswith(f"{tmp_path}/junk.parquet: not a readable Parquet file (") and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="gone.parquet: no such file"):
        read_table(storage, "gone.parquet", SCHEMA)


def test_rows_that_do_not_fit_leave_the_old_table_and_no_temporary_file(tmp_path):
    storage = Storage(str(tmp_path))
    write_table(storage, "t.parquet", ROWS, SCHEMA)
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        write_table(storage, "t.parquet", [{"id": "c", "n": "not a number"}], SCHEMA)
    assert _files(tmp_path) == ["t.parquet"] and read_rows(storage, "t.parquet", SCHEMA) == ROWS


def test_a_failed_move_leaves_the_old_table_and_no_temporary_file(tmp_path, monkeypatch):
    storage = Storage(str(tmp_path))
    write_table(storage, "t.parquet", ROWS, SCHEMA)

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        write_table(storage, "t.parquet", ROWS[:1], SCHEMA)
    monkeypatch.undo()
    assert _files(tmp_path) == ["t.parquet"] and read_rows(storage, "t.parquet", SCHEMA) == ROWS


def test_at_splits_local_paths_and_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage, name = at("assets/assets.parquet")
    assert (storage.root, name) == (str(tmp_path / "assets"), "assets.parquet")
    storage, name = at("memory://bucket/run/assets/assets.parquet")
    assert (storage.url, name) == ("memory://bucket/run/assets", "assets.parquet")
