"""Building WebDataset tar shards: samples spool to a local folder, the shard is assembled sorted by key.

Nothing reaches shared storage until a shard is complete; it is then uploaded under a temporary name
and moved to ``shard-XXXXXX.tar`` (``Storage.put_file_atomic``). Tar headers are fixed (mtime 0,
uid 0, mode 0644), so the same samples always give the same bytes and sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from lrm_dist.scratch import process_folder

SHARD_RE = re.compile(r"^shard-(\d{6,})\.tar$")
SPOOL_PREFIX = "lrm-shard-"
"""Scratch folders of shard builders (``lrm_dist.scratch``): a store that opens removes those of dead processes."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def shard_number(name: str) -> int | None:
    m = SHARD_RE.match(name)
    return int(m.group(1)) if m else None


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, 0, 0o644, 0, 0
    info.uname = info.gname = ""
    return info


@dataclass
class ShardInfo:
    """A committed shard: what the shard index records."""

    shard: str
    sha256: str
    bytes: int
    asset_ids: list[str]
    settings_hashes: list[str]

    def row(self) -> dict:
        return {"shard": self.shard, "sha256": self.sha256, "bytes": self.bytes, "n_samples": len(self.asset_ids),
                "asset_ids": self.asset_ids, "settings_hashes": self.settings_hashes}


@dataclass
class ShardBuilder:
    """Collects samples for one shard in a local spool folder; ``build`` writes the sorted tar."""

    spool: Path = field(default_factory=lambda: process_folder(SPOOL_PREFIX))
    hashes: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0

    def add(self, key: str, members: dict[str, bytes], settings_hash: str) -> None:
        """Spool one sample (its members named ``<key>.<field>``); a key already held is replaced."""
        if any(not name.startswith(key + ".") for name in members):
            raise ValueError(f"sample {key!r}: every member name must start with '{key}.'")
        path = self.spool / f"{key}.tar"
        if key in self.hashes:
            self.nbytes -= path.stat().st_size
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name in sorted(members):
                tar.addfile(_tarinfo(name, len(members[name])), io.BytesIO(members[name]))
        self.hashes[key] = settings_hash
        self.nbytes += path.stat().st_size

    def __len__(self) -> int:
        return len(self.hashes)

    def build(self, out: Path, shard: str) -> ShardInfo:
        """Write the shard tar (samples sorted by key) to ``out``; returns its index record."""
        keys = sorted(self.hashes)
        with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as dst:
            for key in keys:
                with tarfile.open(self.spool / f"{key}.tar", "r") as src:
                    for info in src.getmembers():
                        dst.addfile(_tarinfo(info.name, info.size), src.extractfile(info))
        digest = hashlib.sha256()
        with open(out, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        return ShardInfo(shard, digest.hexdigest(), out.stat().st_size, keys, [self.hashes[k] for k in keys])

    def discard(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)


def scan_shard(fileobj) -> tuple[list[str], list[str], dict[str, dict]]:
    """Read a shard tar fully: its sample keys (in order), each sample's settings hash and meta.

    Raises ``tarfile.TarError``/``ValueError`` for a truncated or foreign file.
    """
    keys: list[str] = []
    metas: dict[str, dict] = {}
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for info in tar:
            key, _, rest = info.name.partition(".")
            if not keys or keys[-1] != key:
                if key in metas or key in keys:
                    raise ValueError(f"sample {key!r} is not contiguous")
                keys.append(key)
            data = tar.extractfile(info).read() if info.isfile() else b""
            if rest == "meta.json":
                metas[key] = json.loads(data)
    missing = [k for k in keys if k not in metas]
    if missing:
        raise ValueError(f"samples without meta.json: {missing[:3]}")
    return keys, [metas[k].get("settings_hash", "") for k in keys], metas
