"""Check a render output folder: every shard readable, samples contiguous and sorted, each done asset
in exactly the one shard its manifest row names, and every shard's sha256 as recorded."""

from __future__ import annotations

import hashlib
import io
import tarfile

from lrm_dist.shards.manifest import SHARDS_DIR, load_index, load_rows
from lrm_dist.storage import Storage
from lrm_dist.shards.writer import scan_shard, shard_number


class RenderDirError(AssertionError):
    """The render folder breaks the exactly-once invariant; the message says where."""


def verify_render_dir(render_url: str) -> dict[str, str]:
    """Raise ``RenderDirError`` on any inconsistency; return {asset_id: shard} of the done assets."""
    st = Storage(render_url)
    rows, index = load_rows(st), load_index(st)
    where: dict[str, str] = {}
    for name in st.listdir(SHARDS_DIR):
        if shard_number(name) is None:
            raise RenderDirError(f"unexpected file in shards/: {name}")
        data = st.read_bytes(f"{SHARDS_DIR}/{name}")
        try:
            keys, hashes, _ = scan_shard(io.BytesIO(data))
        except (tarfile.TarError, ValueError, KeyError, EOFError) as exc:
            raise RenderDirError(f"{name}: unreadable shard ({exc})") from None
        if keys != sorted(keys):
            raise RenderDirError(f"{name}: sample keys are not sorted")
        rec = index.get(name)
        if rec is None or rec["sha256"] != hashlib.sha256(data).hexdigest() or rec["asset_ids"] != keys:
            raise RenderDirError(f"{name}: missing from shards.parquet or recorded differently")
        for key, h in zip(keys, hashes):
            if key in where:
                raise RenderDirError(f"asset {key} is in {where[key]} and in {name}")
            row = rows.get(key)
            if row is None or row["status"] != "done" or row["shard"] != name or row["settings_hash"] != h:
                raise RenderDirError(f"asset {key} in {name} does not match its manifest row {row}")
            where[key] = name
    missing = sorted(k for k, r in rows.items() if r["status"] == "done" and k not in where)
    if missing:
        raise RenderDirError(f"done assets in no shard: {missing[:5]}")
    stale = sorted(set(index) - set(st.listdir(SHARDS_DIR)))
    if stale:
        raise RenderDirError(f"shards.parquet lists missing shards: {stale[:5]}")
    return where
