"""The one storage layer every stage writes through: a local path or any fsspec URL (s3://, gs://, ...).

Files appear atomically: they are written under a ``.tmp`` name and moved into place (a rename on
POSIX; on object stores the final object appears only once complete), so a reader or a resumed job
never sees half a file under its final name.
"""

from __future__ import annotations

import os
import uuid

import fsspec


class Storage:
    """A folder on some filesystem, addressed by relative names."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def url_of(self, name: str) -> str:
        """The URL of ``name`` as other tools (webdataset, Ray) take it."""
        return self.path(name) if self.is_local else f"{self.url}/{name}"

    def makedirs(self, name: str = "") -> None:
        self.fs.makedirs(self.path(name) if name else self.root, exist_ok=True)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def listdir(self, name: str = "") -> list[str]:
        """Base names of the files in a sub-folder ([] when it does not exist)."""
        folder = self.path(name) if name else self.root
        if not self.fs.exists(folder):
            return []
        return sorted(os.path.basename(p.rstrip("/")) for p in self.fs.ls(folder, detail=False))

    def size(self, name: str) -> int:
        return int(self.fs.size(self.path(name)))

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.path(name))

    def open(self, name: str, mode: str = "rb"):
        return self.fs.open(self.path(name), mode)

    def move(self, name: str, new_name: str) -> None:
        """Rename a file within this folder."""
        self.fs.mv(self.path(name), self.path(new_name))

    def remove(self, name: str) -> None:
        if self.fs.exists(self.path(name)):
            self.fs.rm_file(self.path(name))

    def _publish(self, tmp: str, name: str) -> None:
        if self.is_local:
            os.replace(tmp, self.path(name))
        else:
            self.fs.mv(tmp, self.path(name))

    def write_bytes_atomic(self, name: str, data: bytes) -> None:
        tmp = self.path(f"{name}.{uuid.uuid4().hex[:8]}.tmp")
        self.fs.pipe_file(tmp, data)
        self._publish(tmp, name)

    def put_file_atomic(self, local_path: str, name: str) -> None:
        """Upload a finished local file under ``name`` (via a ``.tmp`` name, then a move)."""
        tmp = self.path(f"{name}.{uuid.uuid4().hex[:8]}.tmp")
        self.fs.put_file(local_path, tmp)
        self._publish(tmp, name)
