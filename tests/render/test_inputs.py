"""Hostile and broken asset files are refused before Blender sees them, with a reason."""

import json
import os
import struct
from pathlib import Path

import pytest

from lrm_dist.render.inputs import AssetInputError, stage_asset


def _glb(path, doc: dict) -> None:
    body = json.dumps(doc).encode()
    body += b" " * (-len(body) % 4)
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(body)) + struct.pack("<II", len(body), 0x4E4F534A) + body)


@pytest.mark.parametrize("uri,needle", [
    ("../../etc/passwd.png", "outside the asset folder"),
    ("/etc/passwd", "outside the asset folder"),
    ("http://example.com/t.png", "outside the asset folder"),
    ("file:///etc/hosts", "outside the asset folder"),
    ("missing.png", "missing"),
])
def test_gltf_external_refs(tmp_path, uri, needle):
    p = tmp_path / "a.glb"
    _glb(p, {"asset": {"version": "2.0"}, "images": [{"uri": uri}]})
    with pytest.raises(AssetInputError, match=needle):
        stage_asset(str(p), tmp_path / "staged")


def test_gltf_relative_refs_inside_folder_pass(tmp_path):
    (tmp_path / "tex.png").write_bytes(b"x")
    (tmp_path / "a.bin").write_bytes(b"\0" * 4)
    p = tmp_path / "a.gltf"
    p.write_text(json.dumps({"asset": {"version": "2.0"}, "buffers": [{"uri": "a.bin", "byteLength": 4}],
                             "images": [{"uri": "tex.png"}, {"uri": "data:image/png;base64,AAAA"}]}))
    staged = stage_asset(str(p), tmp_path / "staged")
    assert staged == tmp_path / "staged" / "a.gltf"
    assert sorted(f.name for f in staged.parent.iterdir()) == ["a.bin", "a.gltf", "tex.png"]


def test_bad_files(tmp_path):
    (tmp_path / "empty.glb").write_bytes(b"")
    (tmp_path / "scene.blend").write_bytes(b"BLENDER-v300 with a text block that runs a script")
    (tmp_path / "junk.glb").write_bytes(b"not a gltf at all, just junk bytes")
    (tmp_path / "junk.gltf").write_text("{ not json")
    cases = {
        str(tmp_path / "empty.glb"): "empty file",
        str(tmp_path / "scene.blend"): "unsupported format '.blend'",
        str(tmp_path / "junk.glb"): "bad magic",
        str(tmp_path / "junk.gltf"): "unreadable",
        str(tmp_path / "nope.obj"): "not found",
        str(tmp_path / "sub" / ".." / "empty.glb"): "'..'",
    }
    for uri, needle in cases.items():
        with pytest.raises(AssetInputError, match=needle):
            stage_asset(uri, tmp_path / "staged")


OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\n"


@pytest.fixture
def obj_folder(tmp_path):
    """``asset/a.obj`` with a material and texture inside, plus a secret texture outside the folder."""
    from PIL import Image

    asset, outside = tmp_path / "asset", tmp_path / "outside"
    asset.mkdir()
    outside.mkdir()
    Image.new("RGB", (4, 4), (255, 0, 255)).save(outside / "secret.png")
    Image.new("RGB", (4, 4), (0, 0, 255)).save(asset / "tex.png")
    (asset / "a.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\n")
    (asset / "a.obj").write_text("mtllib a.mtl\n" + OBJ)
    (asset / "other.png").write_bytes(b"a file no reference names")
    return asset, outside


@pytest.mark.parametrize("mtl,needle", [
    ("map_Kd {outside}/secret.png", "is outside the asset folder"),
    ("map_Kd ../outside/secret.png", "is outside the asset folder"),
    ("map_Kd link.png", "'link.png' in a.mtl resolves outside the asset folder"),
])
def test_obj_references_outside_are_refused_before_blender(obj_folder, mtl, needle):
    asset, outside = obj_folder
    (asset / "link.png").symlink_to(outside / "secret.png")
    (asset / "a.mtl").write_text("newmtl m\n" + mtl.format(outside=outside) + "\n")
    with pytest.raises(AssetInputError, match=needle):
        stage_asset(str(asset / "a.obj"), asset.parent / "staged")


def test_symlinked_mesh_outside_is_refused(obj_folder):
    asset, outside = obj_folder
    (outside / "b.obj").write_text(OBJ)
    (asset / "b.obj").symlink_to(outside / "b.obj")
    with pytest.raises(AssetInputError, match="symlink resolving outside the asset folder"):
        stage_asset(str(asset / "b.obj"), asset.parent / "staged")


def test_stage_copies_only_the_checked_files(obj_folder, tmp_path):
    asset, _ = obj_folder
    (asset / "tex-alias.png").symlink_to(asset / "tex.png")
    (asset / "a.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\nmap_Bump tex-alias.png\n")
    dest = tmp_path / "stage"
    (dest / "old").mkdir(parents=True)  # a previous asset's copy is cleared
    staged = stage_asset(str(asset / "a.obj"), dest)
    assert staged == dest / "a.obj"
    assert sorted(p.name for p in dest.rglob("*")) == ["a.mtl", "a.obj", "tex-alias.png", "tex.png"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert (dest / "tex-alias.png").read_bytes() == (asset / "tex.png").read_bytes()


def test_blender_reads_textures_only_from_the_staged_copy(obj_folder, tmp_path, monkeypatch):
    """Blender's OBJ importer retries a missing texture's bare name in the working directory: it must not
    find the secret there, and a texture it found is pinned inside the staged folder."""
    bpy = pytest.importorskip("bpy")
    from lrm_dist.render import scene as S

    asset, outside = obj_folder
    (asset / "a.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\nmap_Bump secret.png\n")
    monkeypatch.chdir(outside)  # the worker's working directory holds secret.png
    staged = stage_asset(str(asset / "a.obj"), tmp_path / "stage")
    S.reset_scene(bpy)
    S.import_asset(bpy, staged, "y")
    images = {Path(i.filepath).name: i for i in bpy.data.images}
    assert set(images) == {"tex.png", "secret.png"}
    assert all(Path(i.filepath).parent == staged.parent for i in images.values())
    assert tuple(images["tex.png"].size) == (4, 4) and tuple(images["secret.png"].size) == (0, 0)
    assert Path.cwd() == outside
    # an image pointing outside the folder (however the importer got it) refuses the asset
    bpy.data.images.load(str(outside / "secret.png"))
    with pytest.raises(AssetInputError, match="texture '.*secret.png' resolves outside the asset folder"):
        S.confine_images(bpy, staged.parent)


def test_orphan_render_folders_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    from lrm_dist.render.blender_worker import SCRATCH_PREFIX
    from lrm_dist.scratch import remove_orphan_folders

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    orphan = tmp_path / f"lrm-render-{dead_pid}-abc"
    live = tmp_path / f"lrm-render-{os.getpid()}-def"
    other = tmp_path / "lrm-render-notapid"
    for folder in (orphan, live, other):
        (folder / "asset").mkdir(parents=True)
    assert remove_orphan_folders(SCRATCH_PREFIX, str(tmp_path)) == [orphan]
    assert not orphan.exists() and live.is_dir() and other.is_dir()


def test_a_manifest_listing_an_asset_twice_renders_it_once():
    from lrm_dist.render.stage import _unique

    rows = [{"asset_id": "a", "uri": "1"}, {"asset_id": "b", "uri": "2"}, {"asset_id": "a", "uri": "3"}]
    assert _unique(rows) == [{"asset_id": "a", "uri": "1"}, {"asset_id": "b", "uri": "2"}]


@pytest.mark.parametrize("uri,needle", [
    ("s3://bucket/assets/scene.blend", "unsupported format '.blend'"),
    ("s3://bucket/assets/../secrets/a.glb", "'..'"),
    ("s3://bucket/assets/noext", "unsupported format '\\(none\\)'"),
])
def test_object_store_names_are_refused_before_any_download(tmp_path, uri, needle):
    """The name checks run before fsspec is asked for the file: no request leaves for a refused name."""
    with pytest.raises(AssetInputError, match=needle):
        stage_asset(uri, tmp_path / "staged")
    assert not (tmp_path / "staged-download").exists()
