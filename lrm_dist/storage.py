"""The one storage layer every stage writes through: a local path or any fsspec URL (s3://, gs://, ...).

Files appear atomically: they are written under a ``.tmp`` name and moved into place (a rename on
POSIX; on object stores the final object appears only once complete), so a reader or a resumed job
never sees half a file under its final name.

Object stores: the workdir's filesystem takes its options (``endpoint_url`` of an S3-compatible
server, ...) from ``storage.options`` in the config (``configure``) or from the client's own
environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` for s3fs). Tools
that need local files (Blender, DeepSpeed, TensorBoard, the report) work in a local temporary folder
and their finished files are uploaded (``local_file``, ``local_folder``, ``upload_folder``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig


class StorageConfig(BaseModel):
    """How the workdir's filesystem is reached when it is an object store (``s3://bucket/run``)."""

    model_config = ConfigDict(extra="forbid")

    options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options of the workdir's filesystem (s3fs for s3://), e.g. {endpoint_url: "
        "'http://127.0.0.1:8333'} for MinIO or SeaweedFS; every process of the job gets them. Keep keys and "
        "secrets out of config files: s3fs reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and "
        "AWS_ENDPOINT_URL) from the environment.",
    )


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a remote filesystem (``s3://...``), not a local path or ``file://`` URL."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def join(base: str, *names: str) -> str:
    """``base/name/...`` for a local path or a URL alike (no pathlib: it would fold ``s3://`` to ``s3:/``)."""
    return "/".join([str(base).rstrip("/"), *(n.strip("/") for n in names if n)])


def exists(path: str | os.PathLike) -> bool:
    """Whether a file or folder exists, for a local path or an object-store URL alike."""
    if not is_url(path):
        return os.path.exists(str(path).removeprefix("file://"))
    fs, inner = fsspec.core.url_to_fs(str(path))
    return fs.exists(inner)


def _protocols(url: str) -> tuple[str, ...]:
    cls = fsspec.get_filesystem_class(fsspec.core.split_protocol(url)[0])
    return tuple(cls.protocol) if isinstance(cls.protocol, (tuple, list)) else (cls.protocol,)


def configure(workdir: str, options: dict[str, Any] | None) -> None:
    """Give the workdir's filesystem ``options`` in this process (fsspec's config) and in the Ray
    workers it starts (an ``FSSPEC_<PROTOCOL>`` variable, read when fsspec is imported there).

    A local workdir needs none; options given for one are ignored."""
    if not options or not is_url(workdir):
        return
    for proto in _protocols(workdir):
        fsspec.config.conf.setdefault(proto, {}).update(options)
        os.environ[f"FSSPEC_{proto.upper()}"] = json.dumps(fsspec.config.conf[proto])


def configure_from(cfg: PipelineConfig) -> None:
    """``configure`` for a ``PipelineConfig``: its ``storage.options`` for its workdir's filesystem."""
    configure(cfg.workdir, cfg.storage.options)


def storage_env() -> dict[str, str]:
    """The ``FSSPEC_*`` variables ``configure`` set, for the runtime environment of a Ray job."""
    return {k: v for k, v in os.environ.items() if k.startswith("FSSPEC_")}


class Storage:
    """A folder on some filesystem, addressed by relative names."""

    def __init__(self, url: str):
        self.url = str(url).rstrip("/")
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

    def isfile(self, name: str) -> bool:
        return self.fs.isfile(self.path(name))

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

    def remove_tree(self, name: str) -> None:
        """Delete a sub-folder and everything in it (nothing when it does not exist)."""
        if self.fs.exists(self.path(name)):
            self.fs.rm(self.path(name), recursive=True)

    def _publish(self, tmp: str, name: str) -> None:
        if self.is_local:
            os.replace(tmp, self.path(name))
        else:
            self.fs.mv(tmp, self.path(name))

    def write_bytes_atomic(self, name: str, data: bytes) -> None:
        """Write ``data`` as ``name`` via a ``.tmp`` name and a move; on failure the ``.tmp`` file is removed."""
        tmp = self.path(f"{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.fs.pipe_file(tmp, data)
            self._publish(tmp, name)
        except BaseException:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            raise

    def put_file_atomic(self, local_path: str, name: str) -> None:
        """Upload a finished local file under ``name`` (via a ``.tmp`` name, then a move)."""
        if self.is_local:
            os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
        tmp = self.path(f"{name}.{uuid.uuid4().hex[:8]}.tmp")
        self.fs.put_file(local_path, tmp)
        self._publish(tmp, name)

    def get_file(self, name: str, local_path: str | os.PathLike) -> None:
        """Download ``name`` to a local file (its folder created)."""
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(self.path(name), str(local_path))

    def upload_folder(self, local_dir: str | os.PathLike, name: str = "", last: tuple[str, ...] = ()) -> list[str]:
        """Upload every file under ``local_dir`` to ``name/`` (each atomically); files named in ``last``
        (relative paths) go after all others, so a reader waiting for them finds the rest in place."""
        local_dir = Path(local_dir)
        files = sorted(str(p.relative_to(local_dir)) for p in local_dir.rglob("*") if p.is_file())
        files = [f for f in files if f not in last] + [f for f in last if f in files]
        for rel in files:
            self.put_file_atomic(str(local_dir / rel), f"{name}/{rel}" if name else rel)
        return files


def upload_folder(local_dir: str | os.PathLike, url: str, last: tuple[str, ...] = ()) -> list[str]:
    """Upload a finished local folder's files to ``url`` (see ``Storage.upload_folder``)."""
    return Storage(url).upload_folder(local_dir, last=last)


@contextlib.contextmanager
def local_file(path: str) -> Iterator[str]:
    """A local path holding the file ``path``: the path itself, or a downloaded copy (same base name,
    deleted afterwards) of an object-store URL."""
    if not is_url(path):
        yield str(path).removeprefix("file://")
        return
    with tempfile.TemporaryDirectory(prefix="lrm-fetch-") as tmp:
        local = os.path.join(tmp, os.path.basename(path.rstrip("/")))
        fs, remote = fsspec.core.url_to_fs(path)
        fs.get_file(remote, local)
        yield local


def cache_dir() -> Path:
    """Where remote folders are cached locally: ``$LRM_DIST_CACHE``, else ``~/.cache/lrm-dist``."""
    return Path(os.environ.get("LRM_DIST_CACHE") or Path.home() / ".cache" / "lrm-dist")


def local_folder(url: str) -> str:
    """A local folder holding the files of the (flat) folder ``url``: ``url`` itself when local, else a
    cached copy under ``cache_dir()/remote``, refreshed when a file's size or ETag changed."""
    if not is_url(url):
        return str(url).removeprefix("file://")
    fs, root = fsspec.core.url_to_fs(url)
    entries = [e for e in fs.ls(root, detail=True) if e.get("type") == "file"]
    if not entries:
        raise FileNotFoundError(f"{url}: no such folder, or it holds no files")
    stamp = {os.path.basename(e["name"]): [e.get("size"), str(e.get("ETag") or e.get("etag") or e.get("mtime")
                                                                 or e.get("LastModified") or "")] for e in entries}
    local = cache_dir() / "remote" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:24]
    stamp_file = local / ".lrm-dist-stamp.json"
    try:
        if json.loads(stamp_file.read_text()) == stamp:
            return str(local)
    except (OSError, ValueError):
        pass
    local.mkdir(parents=True, exist_ok=True)
    for e in entries:  # each file lands whole (a rename), so concurrent readers never see half a file
        name = os.path.basename(e["name"])
        tmp = local / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        fs.get_file(e["name"], str(tmp))
        os.replace(tmp, local / name)
    for stale in set(p.name for p in local.iterdir()) - set(stamp) - {stamp_file.name}:
        if not stale.startswith("."):
            (local / stale).unlink(missing_ok=True)
    tmp = stamp_file.with_name(f".stamp.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, stamp_file)
    return str(local)


def fetch_tree(url: str, dest: str | os.PathLike) -> Path:
    """Download every file under the folder ``url`` into ``dest`` (keeping sub-folders); returns ``dest``."""
    dest = Path(dest)
    fs, root = fsspec.core.url_to_fs(url)
    root = root.rstrip("/")
    for remote in fs.find(root):
        rel = remote[len(root):].lstrip("/")
        if rel:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(dest / rel))
    return dest


def glob(pattern: str) -> list[str]:
    """Files matching a glob on any filesystem, as URLs of the same form (a local pattern gives local paths)."""
    fs, path = fsspec.core.url_to_fs(pattern)
    found = fs.glob(path)
    if not is_url(pattern):
        return sorted(found)
    return sorted(fs.unstrip_protocol(p) for p in found)


def arrow_filesystem(url: str):
    """(pyarrow filesystem, path on it) for ``url``, through the same fsspec filesystem and options as
    everything else (Ray Train's ``storage_filesystem``, Ray Data's ``filesystem``)."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = fsspec.core.url_to_fs(url)
    return PyFileSystem(FSSpecHandler(fs)), path


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kw):
    return fsspec.open(url, mode).open()


def register_webdataset_urls() -> None:
    """Let ``webdataset`` open object-store URLs (``s3://``, ...) through fsspec, as this package does."""
    import importlib

    gopen = importlib.import_module("webdataset.gopen")  # the module: the package exports a function of that name
    for proto in fsspec.available_protocols():
        if proto not in ("file", "local") and proto not in gopen.gopen_schemes:
            gopen.gopen_schemes[proto] = _gopen_fsspec


__all__ = ["Storage", "StorageConfig", "arrow_filesystem", "cache_dir", "configure", "configure_from", "exists",
           "fetch_tree", "glob", "is_url", "join", "local_file", "local_folder", "register_webdataset_urls",
           "storage_env", "upload_folder"]
