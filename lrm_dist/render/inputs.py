"""Checks on an asset file before Blender opens it: hostile or broken inputs fail here with a reason.

Blender never sees a path with ``..``, a format other than glb/gltf/obj/ply/stl (so no .blend and no
embedded scripts), an empty file, or a mesh whose references (glTF buffers/images, OBJ ``mtllib`` and
MTL textures, PLY texture names) or own symlink lead outside the asset's folder or, for glTF, to
missing files (``lrm_dist.geometry.mesh_io.asset_files``). Blender then imports a private copy holding
only the checked files, so none of its own path fallbacks can reach anything else.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from lrm_dist.geometry.limits import MAX_FILE_MB
from lrm_dist.geometry.mesh_io import MeshError, asset_files

RENDERABLE_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")


class AssetInputError(ValueError):
    """An asset file that must not or cannot be rendered; the message is the manifest's reason."""


def _check_name(uri: str) -> str:
    """The file name of ``uri`` (a local path or an object-store URL), or ``AssetInputError`` when the path
    climbs with ``..`` or names a format Blender must not open."""
    parts = PurePosixPath(uri.replace("\\", "/")).parts
    if ".." in parts:
        raise AssetInputError(f"path contains '..': {uri[:120]!r}")
    name = parts[-1] if parts else ""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in RENDERABLE_SUFFIXES:
        known = ", ".join(RENDERABLE_SUFFIXES)
        raise AssetInputError(f"{name}: unsupported format {suffix or '(none)'!r} (renders {known})")
    return name


def _checked(uri: str, max_file_mb: float) -> tuple[Path, list[Path]]:
    """The checked path of ``uri`` and its files relative to its folder, or ``AssetInputError``."""
    _check_name(uri)
    path = Path(uri)
    if not path.is_file():
        raise AssetInputError(f"file not found: {uri[:120]}")
    size = path.stat().st_size
    if size == 0:
        raise AssetInputError(f"{path.name}: empty file")
    if size > max_file_mb * 2**20:
        raise AssetInputError(f"{path.name}: {size / 2**20:.0f} MB, over the {max_file_mb:.0f} MB limit")
    try:
        return path, asset_files(path, max_file_mb)
    except (MeshError, OSError) as exc:
        raise AssetInputError(str(exc).splitlines()[0]) from None


def _download(uri: str, folder: Path, max_file_mb: float) -> str:
    """A local copy of the object-store file ``uri`` in an emptied ``folder``, its name checked and its
    size bounded before anything is downloaded; the copy then goes through the same checks as a local file
    (a format with external references must keep them beside it: only the one file is fetched)."""
    import fsspec

    name = _check_name(uri)
    fs, remote = fsspec.core.url_to_fs(uri)
    try:
        size = int(fs.size(remote))
    except FileNotFoundError:
        raise AssetInputError(f"file not found: {uri[:120]}") from None
    if size > max_file_mb * 2**20:
        raise AssetInputError(f"{name}: {size / 2**20:.0f} MB, over the {max_file_mb:.0f} MB limit")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fs.get_file(remote, str(folder / name))
    return str(folder / name)


def stage_asset(uri: str, dest: Path, max_file_mb: float = MAX_FILE_MB) -> Path:
    """Copy the checked mesh and only the files it references (as plain files) into an emptied ``dest``.

    Returns the copy's mesh path: Blender imports that, so it cannot read a file the check did not pass.
    An object-store ``uri`` (``s3://...``) is downloaded beside ``dest`` first.
    """
    from lrm_dist.storage import is_url

    if is_url(uri):
        uri = _download(uri, dest.with_name(f"{dest.name}-download"), max_file_mb)
    path, files = _checked(uri, max_file_mb)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path.parent / rel, dest / rel)
    return dest / path.name
