"""Reading and checking meshes: every bad input becomes one clear line naming the file.

One confinement rule for every accepted format: the mesh file and every file it references (OBJ
``mtllib`` and MTL texture statements, glTF ``uri``s, PLY ``TextureFile`` comments) must resolve,
symlinks followed, inside the mesh's own folder. ``asset_files`` enforces it for both the asset stage
(before trimesh reads the file) and the render stage (before Blender sees a private copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import struct
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import numpy as np
import trimesh

from lrm_dist.geometry.frame import UP_AXIS_BY_SUFFIX
from lrm_dist.geometry.limits import MAX_FACES, MAX_FILE_MB

MESH_SUFFIXES = tuple(UP_AXIS_BY_SUFFIX)

# Statements that never name a file; every other OBJ/MTL statement's words are checked as references.
_OBJ_PLAIN = ("v", "vt", "vn", "vp", "f", "l", "p", "g", "o", "s", "usemtl", "cstype", "deg", "bmat",
              "step", "curv", "curv2", "surf", "parm", "trim", "hole", "scrv", "sp", "end", "con", "mg",
              "bevel", "c_interp", "d_interp", "lod", "ctech", "stech")
_MTL_PLAIN = ("newmtl", "Ka", "Kd", "Ks", "Ke", "Ns", "Ni", "d", "Tr", "Tf", "illum", "Pr", "Pm", "Ps",
              "Pc", "Pcr", "aniso", "anisor", "sharpness")
_PATH_MAX, _MAX_REFS = 4096, 100_000
_ABSOLUTE = re.compile(r"^(?:[/\\~]|[A-Za-z]:[/\\]|[A-Za-z][A-Za-z0-9+.-]*:/)")  # posix, Windows, UNC, URL


class MeshError(ValueError):
    """A mesh file that cannot be used; ``str(err)`` is one line naming the file and the reason."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (the manifest's change check)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _shown(ref: str, limit: int = 240) -> str:
    """A reference as an error message shows it: whole, or its informative end when very long."""
    return ref if len(ref) <= limit else "..." + ref[-(limit - 3):]


def _statement_refs(path: Path, text: str, plain: tuple[str, ...]) -> list[str]:
    """Every word and every word-to-line-end tail of the statements not in ``plain`` (paths may hold spaces)."""
    text = re.sub(r"\\\r?\n", " ", text)  # OBJ/MTL line continuation
    skip = "|".join(map(re.escape, plain))
    lines = re.finditer(r"^(?![ \t]*(?:#|(?:" + skip + r")(?=[ \t\r\n]|$)|[ \t\r]*$))[^\r\n]*", text, re.M | re.I)
    # trimesh takes the text after the first "mtllib" anywhere, even in a comment
    tails = (m.group(1) for m in re.finditer(r"mtllib([^\r\n]*)", text))
    refs: dict[str, None] = {}
    for rest in itertools.chain(((line.group(0).split(None, 1) + [""])[1] for line in lines), tails):
        for word in re.finditer(r"\S+", rest):
            if len(rest) - word.start() <= _PATH_MAX:  # a longer tail cannot be opened anyway
                refs[rest[word.start():].strip()] = None
            refs[word.group(0)] = None
            if len(refs) > _MAX_REFS:
                raise MeshError(f"{path}: more than {_MAX_REFS:,} possible file references to check")
    return list(refs)


def _glb_json(path: Path) -> bytes:
    """The JSON chunk of a binary glTF."""
    with open(path, "rb") as fh:
        header = fh.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            raise MeshError(f"{path}: cannot read mesh: not a binary glTF (bad magic)")
        chunk_len, chunk_type = struct.unpack("<II", header[12:20])
        if chunk_type != 0x4E4F534A:  # 'JSON'
            raise MeshError(f"{path}: cannot read mesh: binary glTF without a JSON chunk")
        return fh.read(chunk_len)


def _gltf_uris(path: Path) -> list[str]:
    """Every non-``data:`` ``uri`` anywhere in a glTF's JSON (buffers, images, extensions, glTF 1.0 maps)."""
    try:
        doc = json.loads(_glb_json(path) if path.suffix.lower() == ".glb" else path.read_bytes())
    except MeshError:
        raise
    except (ValueError, RecursionError):
        raise MeshError(f"{path}: cannot read mesh: glTF JSON is unreadable") from None
    if not isinstance(doc, dict):
        raise MeshError(f"{path}: cannot read mesh: glTF JSON is not an object")
    uris, stack = [], [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "uri" and isinstance(value, str):
                    uris.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return [u for u in uris if not u.startswith("data:")]


def _ply_texture_refs(path: Path) -> list[str]:
    """The ``TextureFile`` names in a PLY header (trimesh loads them as the texture image)."""
    with open(path, "rb") as fh:
        header = fh.read(1 << 16).split(b"end_header", 1)[0].decode("latin-1")
    refs = []
    for line in header.splitlines():
        at = line.lower().find("texturefile")
        if at >= 0:
            rest = line[at + len("texturefile"):]
            refs.extend([rest.strip(), *rest.split()])
    return [r for r in refs if r]


def _variants(ref: str) -> list[str]:
    """Paths loaders may try for a reference: as written, unquoted, URL-decoded, "\\" as "/", "_" as " ", bare."""
    bare = ref.replace('"', "").strip()
    forms = [ref, bare, unquote(bare), bare.replace("\\", "/"), bare.replace("_", " ")]
    forms.append(PurePosixPath(bare.replace("\\", "/")).name)
    return [f for f in dict.fromkeys(forms) if f]


def _confined(folder: Path, real_folder: Path, ref: str, base: Path, mesh: Path, source: Path) -> list[Path]:
    """The existing files ``ref`` (written in ``source``, relative to ``base``) may name; raises if any escapes."""
    where = f"{mesh}: reference {_shown(ref)!r}" + (f" in {source.name}" if source != mesh else "")
    found = []
    for form in _variants(ref):
        if _ABSOLUTE.match(form) or ".." in re.split(r"[/\\]", form):
            raise MeshError(f"{where} is outside the asset folder (absolute path, URL or '..')")
        try:
            real = Path(os.path.realpath(base / form))
        except (OSError, ValueError):  # an embedded NUL
            raise MeshError(f"{where} is not a usable path") from None
        if not real.is_relative_to(real_folder):
            raise MeshError(f"{where} resolves outside the asset folder (symlink)")
        with contextlib.suppress(OSError):  # e.g. a name too long to exist
            if (base / form).is_file():
                found.append((base / form).relative_to(folder))
    return found


def _read_text(path: Path, max_file_mb: float) -> str:
    """A text file's content (bytes kept through surrogates, so names match the disk), size-checked."""
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_file_mb:
        raise MeshError(f"{path}: file is {size_mb:.0f} MB, over the {max_file_mb:.0f} MB limit")
    return path.read_bytes().decode("utf-8", "surrogateescape")


def asset_files(path: str | Path, max_file_mb: float = MAX_FILE_MB) -> list[Path]:
    """The mesh and every existing file it references, relative to its folder, all checked to resolve inside it.

    Raises ``MeshError`` naming the mesh and the reference when the mesh file or any reference (absolute,
    URL, Windows drive, ``..``, or a symlink) leads outside the folder, or a glTF ``uri`` is missing.
    """
    path = Path(path).absolute()
    folder, real_folder = path.parent, Path(os.path.realpath(path.parent))
    if not Path(os.path.realpath(path)).is_relative_to(real_folder):
        raise MeshError(f"{path}: symlink resolving outside the asset folder")
    suffix = path.suffix.lower()
    files = [Path(path.name)]
    if suffix in (".glb", ".gltf"):
        for uri in _gltf_uris(path):
            found = _confined(folder, real_folder, uri, folder, path, path)
            if not found:
                raise MeshError(f"{path}: referenced file is missing: {_shown(uri)!r}")
            files += found
    elif suffix == ".ply":
        for ref in _ply_texture_refs(path):
            files += _confined(folder, real_folder, ref, folder, path, path)
    elif suffix == ".obj":
        # Blender also tries the OBJ's namesake .mtl when no mtllib is usable
        for ref in [*_statement_refs(path, _read_text(path, max_file_mb), _OBJ_PLAIN), path.stem + ".mtl"]:
            files += _confined(folder, real_folder, ref, folder, path, path)
        for mtl in [folder / f for f in dict.fromkeys(files) if f.suffix.lower() == ".mtl"]:
            for ref in _statement_refs(mtl, _read_text(mtl, max_file_mb), _MTL_PLAIN):
                for base in dict.fromkeys((mtl.parent, folder)):  # Blender: the MTL's folder; trimesh: the OBJ's
                    files += _confined(folder, real_folder, ref, base, path, mtl)
    return list(dict.fromkeys(files))


def load_mesh(path: str | Path, max_faces: int = MAX_FACES, max_file_mb: float = MAX_FILE_MB) -> trimesh.Trimesh:
    """Load any glb/gltf/obj/ply/stl as one triangle mesh (scene transforms applied), checked.

    Raises ``FileNotFoundError`` for a missing file and ``MeshError`` for everything else wrong:
    unsupported format, oversized file, a reference outside the mesh's folder, unreadable, empty,
    non-finite vertices, too many faces.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshError(f"{path}: unsupported mesh format {suffix!r} (expected one of {', '.join(MESH_SUFFIXES)})")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_file_mb:
        raise MeshError(f"{path}: file is {size_mb:.0f} MB, over the {max_file_mb:.0f} MB limit")
    if size_mb == 0:
        raise MeshError(f"{path}: empty file")
    asset_files(path, max_file_mb)
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeshError(f"{path}: cannot read mesh: {first}") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(f"{path}: mesh has no triangles")
    if len(loaded.faces) > max_faces:
        raise MeshError(f"{path}: {len(loaded.faces):,} faces, over the {max_faces:,} face limit")
    if not np.isfinite(loaded.vertices).all():
        raise MeshError(f"{path}: mesh has NaN or infinite vertex coordinates")
    extent = loaded.bounds[1] - loaded.bounds[0]
    if float(extent.max()) <= 0:
        raise MeshError(f"{path}: mesh is degenerate (zero-size bounding box)")
    return loaded
