"""The render output folder as one transactional store: shards, render manifest and shard index.

Invariant after ``open()`` and after ``close()``: every done row of ``render.parquet`` points to a
shard on storage that holds that asset with that settings hash, and every sample in every shard is
pointed to by exactly one done row, so the shards hold each asset exactly once.

Crash safety comes from the order of writes (one writer: the job's driver):
1. a shard is built locally, uploaded as ``.tmp`` and renamed; 2. ``render.parquet`` is rewritten;
3. ``shards.parquet`` is rewritten; 4. superseded shards are deleted. ``open()`` repairs any prefix of
that sequence: ``.tmp`` files are deleted (their assets render again), shards missing from the index
are read and adopted (they are always the newest writes), rows pointing to missing shards are
dropped, and shards holding superseded samples are compacted or deleted.

Only this store's own writes are adopted: before step 1 the writer records the shard's SHA-256 in
``<name>.intent`` (removed after step 3). A shard in ``shards/`` that is neither indexed as it is
nor announced by a matching intent (a file dropped or altered by hand, another job's output) is
moved to ``foreign/`` with a warning, never trained on and never deleted.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

from lrm_dist.log import get_logger
from lrm_dist.scratch import remove_orphan_folders
from lrm_dist.shards.config import ShardsConfig
from lrm_dist.shards.manifest import SHARDS_DIR, load_index, load_rows, save_index, save_rows
from lrm_dist.storage import Storage
from lrm_dist.shards.writer import SPOOL_PREFIX, ShardBuilder, ShardInfo, scan_shard, shard_name, shard_number

log = get_logger(__name__)

INTENT = ".intent"  # <render>/<shard name>.intent: the SHA-256 of a shard this store is publishing
FOREIGN_DIR = "foreign"  # shards found in shards/ that this store did not write


@dataclass
class OpenReport:
    """What ``ShardStore.open`` found and repaired."""

    done: int = 0
    failed: int = 0
    removed_tmp: int = 0
    adopted: int = 0
    dropped_rows: int = 0
    unreadable_shards: int = 0
    foreign_shards: int = 0
    compacted: int = 0
    deleted_shards: int = 0


def done_row(asset_id: str, settings_hash: str, shard: str | None, n_views: int, attempts: int = 1,
             seconds: float | None = None) -> dict:
    return {"asset_id": asset_id, "settings_hash": settings_hash, "status": "done", "reason": None,
            "attempts": attempts, "shard": shard, "n_views": n_views, "seconds": seconds}


def failed_row(asset_id: str, settings_hash: str, reason: str, attempts: int) -> dict:
    return {"asset_id": asset_id, "settings_hash": settings_hash, "status": "failed", "reason": reason[:500],
            "attempts": attempts, "shard": None, "n_views": None, "seconds": None}


class ShardStore:
    """Single-writer store under ``render_url`` (``<workdir>/render``): ``open``, ``add``/``fail``, ``close``."""

    def __init__(self, render_url: str, cfg: ShardsConfig | None = None, failed_flush_every: int = 16):
        self.storage = Storage(render_url)
        self.cfg = cfg or ShardsConfig()
        self.rows: dict[str, dict] = {}
        self.index: dict[str, dict] = {}
        self.next_index = 0
        self._builder: ShardBuilder | None = None
        self._staged: dict[str, dict] = {}
        self._dirty_failed = 0
        self._failed_flush_every = failed_flush_every

    # -- resume -------------------------------------------------------------------------------------
    def open(self) -> OpenReport:
        """Load and repair the store (see the module docstring); safe to call on an empty folder."""
        remove_orphan_folders(SPOOL_PREFIX)  # spools of shard builders whose process died mid-shard
        st, report = self.storage, OpenReport()
        st.makedirs(SHARDS_DIR)
        for folder in ("", SHARDS_DIR):
            for name in st.listdir(folder):
                if name.endswith(".tmp"):
                    st.remove(f"{folder}/{name}" if folder else name)
                    report.removed_tmp += 1
        rows, index = load_rows(st), load_index(st)
        intents = {n.removesuffix(INTENT): st.read_bytes(n).decode("ascii", "replace")
                   for n in st.listdir() if n.endswith(INTENT)}
        contents: dict[str, set[tuple[str, str]]] = {}
        adopted: list[tuple[str, dict]] = []
        numbers = [n for n in (shard_number(x) for x in index) if n is not None]
        for name in st.listdir(SHARDS_DIR):
            number = shard_number(name)
            if number is None:
                continue
            numbers.append(number)
            rec = index.get(name)
            if rec is not None and rec["bytes"] == st.size(f"{SHARDS_DIR}/{name}"):
                contents[name] = set(zip(rec["asset_ids"], rec["settings_hashes"]))
                continue
            data = st.read_bytes(f"{SHARDS_DIR}/{name}")
            if intents.get(name) != hashlib.sha256(data).hexdigest():
                log.warning("shard %s was not written by this render job (not indexed, no matching intent): "
                            "moved to %s/, not used", name, FOREIGN_DIR)
                st.makedirs(FOREIGN_DIR)
                st.move(f"{SHARDS_DIR}/{name}", f"{FOREIGN_DIR}/{name}")
                index.pop(name, None)
                report.foreign_shards += 1
                continue
            try:
                keys, hashes, metas = scan_shard(io.BytesIO(data))
            except (tarfile.TarError, ValueError, KeyError, EOFError) as exc:
                log.warning("shard %s is unreadable (%s): deleting it; its assets render again", name, exc)
                st.remove(f"{SHARDS_DIR}/{name}")
                report.unreadable_shards += 1
                continue
            info = ShardInfo(name, hashlib.sha256(data).hexdigest(), len(data), keys, hashes)
            index[name] = info.row()
            contents[name] = set(zip(keys, hashes))
            adopted.append((name, metas))
        self.next_index = max(numbers, default=-1) + 1
        index = {n: r for n, r in index.items() if n in contents}
        # Shards missing from the index are the newest writes: their samples win (newest shard last).
        for name, metas in sorted(adopted, key=lambda item: shard_number(item[0])):
            for key, meta in metas.items():
                rows[key] = done_row(key, meta.get("settings_hash", ""), name, int(meta.get("n_views", 0)),
                                     int(meta.get("attempts", 1)), meta.get("render_seconds"))
                report.adopted += 1
        for key, row in list(rows.items()):
            if row["status"] == "done" and (key, row["settings_hash"]) not in contents.get(row["shard"], ()):
                log.warning("asset %s: its shard %s does not hold it; it renders again", key, row["shard"])
                del rows[key]
                report.dropped_rows += 1
        self.rows, self.index = rows, index
        save_rows(st, rows)
        save_index(st, index)
        for name in intents:
            st.remove(f"{name}{INTENT}")
        report.compacted, report.deleted_shards = self.compact()
        report.done = sum(r["status"] == "done" for r in rows.values())
        report.failed = len(rows) - report.done
        return report

    def is_done(self, asset_id: str, settings_hash: str) -> bool:
        row = self.rows.get(asset_id)
        return row is not None and row["status"] == "done" and row["settings_hash"] == settings_hash

    # -- writing ------------------------------------------------------------------------------------
    def add(self, asset_id: str, members: dict[str, bytes], row: dict) -> ShardInfo | None:
        """Stage one rendered asset (a done row without shard); commits a shard when it is full.

        Idempotent: an asset already done with the same settings hash is ignored, one staged twice is
        replaced (a retried render may deliver twice).
        """
        if self.is_done(asset_id, row["settings_hash"]):
            return None
        if self._builder is None:
            self._builder = ShardBuilder()
        self._builder.add(asset_id, members, row["settings_hash"])
        self._staged[asset_id] = dict(row)
        if len(self._builder) >= self.cfg.max_samples or self._builder.nbytes >= self.cfg.max_bytes:
            return self.flush()
        return None

    def fail(self, row: dict) -> None:
        """Record a failed asset (written with the next commit, or every few failures)."""
        self.rows[row["asset_id"]] = row
        self._dirty_failed += 1
        if self._dirty_failed >= self._failed_flush_every:
            save_rows(self.storage, self.rows)
            self._dirty_failed = 0

    def _commit(self, builder: ShardBuilder, staged: dict[str, dict]) -> ShardInfo:
        name = shard_name(self.next_index)
        self.next_index += 1
        local = builder.spool / name
        info = builder.build(local, name)
        self.storage.write_bytes_atomic(f"{name}{INTENT}", info.sha256.encode("ascii"))
        self.storage.put_file_atomic(str(local), f"{SHARDS_DIR}/{name}")
        for key in info.asset_ids:
            self.rows[key] = {**staged[key], "shard": name}
        save_rows(self.storage, self.rows)
        self.index[name] = info.row()
        save_index(self.storage, self.index)
        self.storage.remove(f"{name}{INTENT}")
        builder.discard()
        self._dirty_failed = 0
        log.info("committed %s: %d samples, %.1f MB", name, len(info.asset_ids), info.bytes / 2**20)
        return info

    def flush(self) -> ShardInfo | None:
        """Commit the open shard (if any) and save pending failed rows."""
        info = None
        if self._builder is not None and len(self._builder):
            info = self._commit(self._builder, self._staged)
        self._builder, self._staged = None, {}
        if self._dirty_failed:
            save_rows(self.storage, self.rows)
            self._dirty_failed = 0
        return info

    # -- garbage collection -------------------------------------------------------------------------
    def _live(self, name: str) -> list[str]:
        rec = self.index[name]
        return [k for k, h in zip(rec["asset_ids"], rec["settings_hashes"])
                if (row := self.rows.get(k)) and row["status"] == "done" and row["shard"] == name
                and row["settings_hash"] == h]

    def compact(self) -> tuple[int, int]:
        """Delete shards without live samples, rewrite those holding superseded ones; returns (rewritten, deleted)."""
        rewritten = deleted = 0
        for name in sorted(self.index):
            live = self._live(name)
            if len(live) == self.index[name]["n_samples"]:
                continue
            if live:
                builder, staged = ShardBuilder(), {}
                try:  # the samples stay in the old shard until the new one is committed: the spool is scratch
                    with self.storage.open(f"{SHARDS_DIR}/{name}") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
                        members: dict[str, dict[str, bytes]] = {}
                        for info in tar:
                            key = info.name.partition(".")[0]
                            if key in live:
                                members.setdefault(key, {})[info.name] = tar.extractfile(info).read()
                    for key in live:
                        builder.add(key, members[key], self.rows[key]["settings_hash"])
                        staged[key] = self.rows[key]
                    self._commit(builder, staged)
                finally:
                    builder.discard()
                rewritten += 1
            del self.index[name]
            save_index(self.storage, self.index)
            self.storage.remove(f"{SHARDS_DIR}/{name}")
            deleted += not live
        return rewritten, deleted

    def close(self) -> None:
        """Commit what is staged, then garbage-collect superseded samples."""
        self.flush()
        self.compact()

    def discard_staged(self) -> None:
        """Drop staged, uncommitted samples (an aborted job renders them again next time)."""
        if self._builder is not None:
            self._builder.discard()
        self._builder, self._staged = None, {}
