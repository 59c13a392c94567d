"""Checks on an asset file before Blender opens it: hostile or broken inputs fail here with a reason.

Blender never sees a path with ``..``, a format other than glb/gltf/obj/ply/stl (so no .blend and no
embedded scripts), an empty file, or a glTF whose buffers/images point outside the asset's folder
(absolute paths, URLs, ``..``) or to files that are missing.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

RENDERABLE_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")


class AssetInputError(ValueError):
    """An asset file that must not or cannot be rendered; the message is the manifest's reason."""


def _glb_json(path: Path) -> dict:
    with open(path, "rb") as fh:
        header = fh.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            raise AssetInputError(f"{path.name}: not a binary glTF (bad magic)")
        chunk_len, chunk_type = struct.unpack("<II", header[12:20])
        if chunk_type != 0x4E4F534A:  # 'JSON'
            raise AssetInputError(f"{path.name}: binary glTF without a JSON chunk")
        raw = fh.read(chunk_len)
    try:
        return json.loads(raw)
    except ValueError:
        raise AssetInputError(f"{path.name}: binary glTF with unreadable JSON") from None


def _check_gltf_refs(path: Path) -> None:
    try:
        doc = _glb_json(path) if path.suffix.lower() == ".glb" else json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, AssetInputError):
            raise
        raise AssetInputError(f"{path.name}: glTF JSON is unreadable") from None
    if not isinstance(doc, dict):
        raise AssetInputError(f"{path.name}: glTF JSON is not an object")
    for kind in ("buffers", "images"):
        for item in doc.get(kind) or []:
            uri = item.get("uri") if isinstance(item, dict) else None
            if not uri or uri.startswith("data:"):
                continue
            parsed = urlparse(uri)
            rel = PurePosixPath(unquote(parsed.path))
            if parsed.scheme or parsed.netloc or rel.is_absolute() or ".." in rel.parts:
                raise AssetInputError(f"{path.name}: external reference outside the asset folder: {uri[:80]!r}")
            if not (path.parent / rel).is_file():
                raise AssetInputError(f"{path.name}: referenced file is missing: {uri[:80]!r}")


def check_asset_file(uri: str, max_file_mb: float = 500.0) -> Path:
    """Return the checked local path of ``uri``, or raise ``AssetInputError`` naming what is wrong."""
    if ".." in PurePosixPath(uri.replace("\\", "/")).parts:
        raise AssetInputError(f"path contains '..': {uri[:120]!r}")
    path = Path(uri)
    suffix = path.suffix.lower()
    if suffix not in RENDERABLE_SUFFIXES:
        known = ", ".join(RENDERABLE_SUFFIXES)
        raise AssetInputError(f"{path.name}: unsupported format {suffix or '(none)'!r} (renders {known})")
    if not path.is_file():
        raise AssetInputError(f"file not found: {uri[:120]}")
    size = path.stat().st_size
    if size == 0:
        raise AssetInputError(f"{path.name}: empty file")
    if size > max_file_mb * 2**20:
        raise AssetInputError(f"{path.name}: {size / 2**20:.0f} MB, over the {max_file_mb:.0f} MB limit")
    if suffix in (".glb", ".gltf"):
        _check_gltf_refs(path)
    return path
