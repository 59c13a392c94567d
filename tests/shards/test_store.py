"""Shard store: commits, resume after a crash at every write step, settings changes, garbage collection."""

import hashlib
import io
import os

import pytest
from shard_helpers import members

import lrm_dist.shards.store as store_mod
from lrm_dist.shards.config import ShardsConfig
from lrm_dist.shards.manifest import SHARDS_DIR, load_index, load_rows, shard_urls
from lrm_dist.shards.reader import iter_shard_samples
from lrm_dist.storage import Storage
from lrm_dist.shards.store import ShardStore, done_row, failed_row
from lrm_dist.shards.verify import RenderDirError, verify_render_dir
from lrm_dist.shards.writer import scan_shard


class Crash(Exception):
    """Stands in for the process being killed at a given point."""


def _store(render_dir, max_samples=2) -> ShardStore:
    s = ShardStore(render_dir, ShardsConfig(max_samples=max_samples))
    s.open()
    return s


def _add(s: ShardStore, asset_id: str, h: str = "h1", seed: int = 0):
    return s.add(asset_id, members(asset_id, h, seed), done_row(asset_id, h, None, 2, 1, 0.5))


@pytest.fixture
def render_dir(tmp_path):
    return str(tmp_path / "render")


def test_commits_sorted_shards_with_checksums(render_dir):
    s = _store(render_dir, max_samples=3)
    infos = [i for a in ["e", "b", "d", "a", "c"] if (i := _add(s, a)) is not None]
    assert [i.asset_ids for i in infos] == [["b", "d", "e"]]
    s.fail(failed_row("z", "h1", "bad file", 1))
    s.close()
    where = verify_render_dir(render_dir)
    assert where == {"b": "shard-000000.tar", "d": "shard-000000.tar", "e": "shard-000000.tar",
                     "a": "shard-000001.tar", "c": "shard-000001.tar"}
    rows = load_rows(Storage(render_dir))
    assert rows["z"]["status"] == "failed" and rows["z"]["reason"] == "bad file"
    index = load_index(Storage(render_dir))
    data = Storage(render_dir).read_bytes(f"{SHARDS_DIR}/shard-000000.tar")
    assert index["shard-000000.tar"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert index["shard-000000.tar"]["n_samples"] == 3
    got = [x["asset_id"] for x in iter_shard_samples(shard_urls(render_dir))]
    assert got == ["b", "d", "e", "a", "c"]


def test_duplicate_delivery_is_idempotent(render_dir):
    s = _store(render_dir, max_samples=2)
    _add(s, "a")
    _add(s, "a")  # staged twice: replaced
    _add(s, "b")  # commits a, b
    assert _add(s, "a") is None  # delivered again after commit: ignored
    s.close()
    assert sorted(verify_render_dir(render_dir)) == ["a", "b"]


def test_resume_skips_done_and_rerenders_changed_settings(render_dir):
    s = _store(render_dir)
    for a in "abcd":
        _add(s, a, "h1")
    s.close()
    s2 = _store(render_dir)
    assert all(s2.is_done(a, "h1") for a in "abcd") and not s2.is_done("a", "h2")
    # a settings change re-renders; interrupted after 3 of 4 (a, b committed; c staged and lost)
    _add(s2, "a", "h2", seed=1)
    _add(s2, "b", "h2", seed=1)
    _add(s2, "c", "h2", seed=1)
    s2.discard_staged()
    s3 = _store(render_dir)  # open compacts: shard 0 (a, b @h1) is superseded, shard 1 (c, d @h1) stays
    rows = verify_render_dir(render_dir)
    assert sorted(rows) == list("abcd")
    assert [a for a in "abcd" if s3.is_done(a, "h2")] == ["a", "b"]
    _add(s3, "c", "h2", seed=1)
    _add(s3, "d", "h2", seed=1)
    s3.close()
    verify_render_dir(render_dir)
    final = load_rows(Storage(render_dir))
    assert {r["settings_hash"] for r in final.values()} == {"h2"}
    assert len(Storage(render_dir).listdir(SHARDS_DIR)) == 2


@pytest.mark.parametrize("point", ["upload", "rows", "index"])
def test_crash_at_each_commit_step_loses_and_duplicates_nothing(render_dir, monkeypatch, point):
    s = _store(render_dir)
    _add(s, "a")
    _add(s, "b")  # shard 0 committed cleanly
    real = {"upload": Storage.put_file_atomic, "rows": store_mod.save_rows, "index": store_mod.save_index}[point]

    def crashing(*args, **kwargs):
        if point == "upload":  # the .tmp upload happened, the rename did not
            storage, local, name = args
            storage.fs.put_file(local, storage.path(name + ".deadbeef.tmp"))
        raise Crash(point)

    target = {"upload": (Storage, "put_file_atomic"), "rows": (store_mod, "save_rows"),
              "index": (store_mod, "save_index")}[point]
    monkeypatch.setattr(*target, crashing)
    _add(s, "c")
    with pytest.raises(Crash):
        _add(s, "d")
    monkeypatch.setattr(*target, real)
    s.discard_staged()  # the crashed process's spool (a real crash leaves it to the next store on the node)
    s2 = ShardStore(render_dir, ShardsConfig(max_samples=2))
    report = s2.open()
    rows = verify_render_dir(render_dir)
    if point == "upload":  # the shard never appeared: c, d render again
        assert report.removed_tmp == 1 and sorted(rows) == ["a", "b"]
    else:  # the shard was renamed: it is adopted, nothing renders twice
        assert report.adopted == 2 and sorted(rows) == ["a", "b", "c", "d"]
    pending = [a for a in "abcd" if not s2.is_done(a, "h1")]
    for a in pending:
        _add(s2, a)
    s2.close()
    assert sorted(verify_render_dir(render_dir)) == ["a", "b", "c", "d"]


def test_crash_during_compaction_is_repaired(render_dir, monkeypatch):
    s = _store(render_dir)
    for a in "abcd":
        _add(s, a, "h1")
    s.close()
    s2 = _store(render_dir)
    _add(s2, "a", "h2")
    s2.fail(failed_row("c", "h2", "broken", 3))  # shards 0 and 1 each now hold a superseded sample
    _add(s2, "x", "h2")
    monkeypatch.setattr(Storage, "remove", lambda self, name: (_ for _ in ()).throw(Crash("remove")))
    with pytest.raises(Crash):
        s2.close()  # rewrote shard 0's live sample into a new shard, died before deleting the old one
    monkeypatch.undo()
    ShardStore(render_dir, ShardsConfig(max_samples=2)).open()
    rows = verify_render_dir(render_dir)
    assert sorted(rows) == ["a", "b", "d", "x"]
    assert load_rows(Storage(render_dir))["c"]["status"] == "failed"


def test_missing_and_corrupt_shards(render_dir):
    s = _store(render_dir)
    for a in "abcd":
        _add(s, a)
    s.close()
    st = Storage(render_dir)
    st.remove(f"{SHARDS_DIR}/shard-000000.tar")  # lost: a, b render again
    data = st.read_bytes(f"{SHARDS_DIR}/shard-000001.tar")
    st.remove(f"{SHARDS_DIR}/shard-000001.tar")
    with st.open(f"{SHARDS_DIR}/shard-000007.tar", "wb") as fh:  # truncated, unrecorded
        fh.write(data[: len(data) // 2])
    with pytest.raises(RenderDirError):
        verify_render_dir(render_dir)
    s2 = ShardStore(render_dir)
    report = s2.open()
    # the unrecorded truncated file was not written by the store: set aside, not deleted
    assert report.foreign_shards == 1 and report.dropped_rows == 4
    assert st.listdir("foreign") == ["shard-000007.tar"]
    assert verify_render_dir(render_dir) == {}
    assert s2.next_index == 8  # never reuses a shard number


def test_verify_catches_a_duplicate(render_dir):
    s = _store(render_dir)
    for a in "ab":
        _add(s, a)
    s.close()
    st = Storage(render_dir)
    st.write_bytes_atomic(f"{SHARDS_DIR}/shard-000005.tar", st.read_bytes(f"{SHARDS_DIR}/shard-000000.tar"))
    with pytest.raises(RenderDirError):
        verify_render_dir(render_dir)
    report = ShardStore(render_dir).open()  # the copy was not written by the store: set aside
    assert report.foreign_shards == 1 and report.adopted == 0
    assert set(verify_render_dir(render_dir).values()) == {"shard-000000.tar"}
    keys, _, _ = scan_shard(io.BytesIO(st.read_bytes("foreign/shard-000005.tar")))
    assert keys == ["a", "b"]


def test_a_foreign_shard_is_set_aside_and_never_read_for_training(render_dir, tmp_path):
    from lrm_dist.train.data import resolve_shards

    s = _store(render_dir)
    for a in "ab":
        _add(s, a)
    s.close()
    other = tmp_path / "other-render"
    s_other = ShardStore(str(other), ShardsConfig(max_samples=2))
    s_other.open()
    for a in "xy":
        _add(s_other, a)
    s_other.close()
    st = Storage(render_dir)
    st.write_bytes_atomic(f"{SHARDS_DIR}/shard-000009.tar", Storage(str(other)).read_bytes(f"{SHARDS_DIR}/shard-000000.tar"))
    report = ShardStore(render_dir).open()
    assert report.foreign_shards == 1 and report.adopted == 0
    assert sorted(verify_render_dir(render_dir)) == ["a", "b"]
    assert [p.rsplit("/", 1)[1] for p in resolve_shards(f"{render_dir}/{SHARDS_DIR}")] == ["shard-000000.tar"]


def test_store_on_an_fsspec_url():
    import fsspec

    url = "memory://lrm-test-store/render"
    s = ShardStore(url, ShardsConfig(max_samples=2))
    s.open()
    for a in "abc":
        _add(s, a)
    s.close()
    fs = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls("/lrm-test-store/render/shards", detail=False)) == [
        "shard-000000.tar", "shard-000001.tar"]
    assert sorted(verify_render_dir(url)) == ["a", "b", "c"]
    again = ShardStore(url)
    again.open()
    assert all(again.is_done(a, "h1") for a in "abc")
    fs.rm("/lrm-test-store", recursive=True)


def test_spools_of_dead_processes_are_removed_when_a_store_opens(render_dir, tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from lrm_dist.shards.writer import SPOOL_PREFIX, ShardBuilder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the system temp folder, for this test
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)  # that process has exited
    orphan = tmp_path / f"{SPOOL_PREFIX}{dead}-abc"
    (orphan / "x.tar").parent.mkdir()
    (orphan / "x.tar").write_bytes(b"half a shard")
    mine = ShardBuilder()  # this process's spool, in use
    assert mine.spool.parent == tmp_path and mine.spool.name.startswith(f"{SPOOL_PREFIX}{os.getpid()}-")
    _store(render_dir)
    assert not orphan.exists() and mine.spool.is_dir()
    mine.discard()
