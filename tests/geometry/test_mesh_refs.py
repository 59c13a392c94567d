"""The one confinement rule: a mesh and every file it references stay inside the mesh's folder."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrm_dist.geometry.mesh_io import MeshError, asset_files, load_mesh

OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\nf 1/1 3/3 4/2\n"
SECRET = (255, 0, 255)


@pytest.fixture
def layout(tmp_path):
    """``asset/`` holds the mesh under test; ``outside/`` holds a secret texture, material and mesh."""
    asset, outside = tmp_path / "root" / "asset", tmp_path / "outside"
    asset.mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (4, 4), SECRET).save(outside / "secret.png")
    (outside / "secret.mtl").write_text("newmtl m\nmap_Kd secret.png\n")
    (outside / "secret.obj").write_text(OBJ)
    return asset, outside


def _obj(asset: Path, mtl_lines: str, mtllib: str = "mtllib a.mtl\n", name: str = "a") -> Path:
    (asset / f"{name}.mtl").write_text("newmtl m\nKd 1 1 1\n" + mtl_lines)
    (asset / f"{name}.obj").write_text(mtllib + OBJ)
    return asset / f"{name}.obj"


@pytest.mark.parametrize("line", [
    "map_Kd {secret}",                       # absolute
    "map_Kd ../../outside/secret.png",       # '..'
    "map_Kd ..\\..\\outside\\secret.png",    # Windows separators
    "map_Kd C:\\textures\\secret.png",       # Windows drive
    "map_Kd \\\\server\\share\\secret.png",  # UNC
    "map_Kd file://{secret}",                # URL
    'map_Kd "../../outside/secret.png"',     # quoted (Blender strips the quotes)
    "map_Kd -s 1 1 1 -o 0 0 0 ../../outside/secret.png",
    "map_Bump -bm 0.5 {secret}",
    "bump {secret}",
    "disp ../../outside/secret.png",
    "norm {secret}",
    "refl -type sphere {secret}",
    "map_Pr {secret}",
    "map_Kd my dir/../../../outside/secret.png",
    "map_Kd \\\n  ../../outside/secret.png",  # line continuation
    "map_Kd %2e%2e/%2e%2e/outside/secret.png",
])
def test_mtl_references_outside_are_refused(layout, line):
    asset, outside = layout
    mesh = _obj(asset, line.format(secret=outside / "secret.png") + "\n")
    with pytest.raises(MeshError, match="outside the asset folder") as err:
        asset_files(mesh)
    message = str(err.value)
    assert str(mesh) in message and "a.mtl" in message and "\n" not in message


@pytest.mark.parametrize("mtllib", [
    "mtllib ../../outside/secret.mtl", "mtllib {outside}/secret.mtl", "mtllib a.mtl ../../outside/secret.mtl",
    "mtllib ..\\..\\outside\\secret.mtl", "call ../../outside/secret.obj", "# mtllib ../../outside/secret.mtl",
])
def test_obj_references_outside_are_refused(layout, mtllib):
    asset, outside = layout
    mesh = _obj(asset, "", mtllib=mtllib.format(outside=outside) + "\n")
    with pytest.raises(MeshError, match=r"a\.obj: reference .* is outside the asset folder"):
        asset_files(mesh)


def test_namesake_mtl_is_checked_without_mtllib(layout):
    """Blender loads ``a.mtl`` beside ``a.obj`` even when the OBJ names no material library."""
    asset, outside = layout
    mesh = _obj(asset, f"map_Kd {outside / 'secret.png'}\n", mtllib="")
    with pytest.raises(MeshError, match=f"{outside / 'secret.png'}"):
        asset_files(mesh)


@pytest.mark.parametrize("link", ["tex.png", "my tex.png", "sub/tex.png", "a.mtl"])
def test_symlinks_leading_outside_are_refused(layout, link):
    asset, outside = layout
    mesh = _obj(asset, "map_Kd tex.png\nmap_Ka my_tex.png\nmap_Ks sub/tex.png\n")
    (asset / "sub").mkdir()
    target = asset / link
    target.unlink(missing_ok=True)
    target.symlink_to(outside / ("secret.mtl" if link.endswith(".mtl") else "secret.png"))
    with pytest.raises(MeshError, match="resolves outside the asset folder"):
        asset_files(mesh)


def test_symlinked_subfolder_leading_outside_is_refused(layout):
    asset, outside = layout
    mesh = _obj(asset, "map_Kd textures/secret.png\n")
    (asset / "textures").symlink_to(outside)
    with pytest.raises(MeshError, match="'textures/secret.png' in a.mtl resolves outside"):
        asset_files(mesh)


def test_symlinked_mesh_leading_outside_is_refused(layout):
    asset, outside = layout
    (asset / "link.obj").symlink_to(outside / "secret.obj")
    with pytest.raises(MeshError, match=r"link\.obj: symlink resolving outside the asset folder"):
        load_mesh(asset / "link.obj")


def test_files_inside_are_listed_and_loaded(layout):
    asset, _ = layout
    (asset / "mats").mkdir()
    (asset / "tex").mkdir()
    Image.new("RGB", (4, 4), (0, 200, 0)).save(asset / "tex" / "wood grain.png")
    (asset / "mats" / "a.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd -s 1 1 1 ../tex/wood grain.png\n"
                                          "map_Bump tex/wood grain.png\n")
    (asset / "chair.obj").write_text("mtllib mats/a.mtl\n" + OBJ)
    (asset / "unrelated.png").write_bytes(b"not referenced")
    with pytest.raises(MeshError, match="'../tex/wood grain.png' in a.mtl"):
        asset_files(asset / "chair.obj")  # '..' stays refused even when it lands inside
    (asset / "mats" / "a.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd -s 1 1 1 tex/wood grain.png\n")
    assert asset_files(asset / "chair.obj") == [Path("chair.obj"), Path("mats/a.mtl"), Path("tex/wood grain.png")]
    mesh = load_mesh(asset / "chair.obj")
    assert len(mesh.faces) == 2


def _glb(path: Path, doc: dict) -> None:
    body = json.dumps(doc).encode()
    body += b" " * (-len(body) % 4)
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(body)) + struct.pack("<II", len(body), 0x4E4F534A) + body)


@pytest.mark.parametrize("doc", [
    {"images": [{"uri": "tex.png"}]},                                       # tex.png links outside
    {"images": {"img0": {"uri": "../outside/secret.png"}}},                 # glTF 1.0 keyed objects
    {"shaders": {"s": {"uri": "/etc/hostname"}}},
    {"extensions": {"X_ext": {"files": [{"uri": "%2E%2E/x.bin"}]}}},        # anywhere, URL-encoded
    {"buffers": [{"uri": "C:/data/x.bin", "byteLength": 4}]},
])
def test_gltf_uris_anywhere_are_confined(layout, doc):
    asset, outside = layout
    (asset / "tex.png").symlink_to(outside / "secret.png")
    _glb(asset / "a.glb", {"asset": {"version": "2.0"}, **doc})
    with pytest.raises(MeshError, match=r"a\.glb: reference .* outside the asset folder"):
        load_mesh(asset / "a.glb")


def test_ply_texture_file_is_confined(layout):
    asset, outside = layout
    header = f"ply\nformat ascii 1.0\ncomment TextureFile {outside / 'secret.png'}\nelement vertex 3\n"
    body = "property float x\nproperty float y\nproperty float z\nelement face 1\n"
    body += "property list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
    (asset / "a.ply").write_text(header + body)
    with pytest.raises(MeshError, match=r"a\.ply: reference .*secret\.png.* outside the asset folder"):
        load_mesh(asset / "a.ply")
    (asset / "a.ply").write_text(header.replace(str(outside / "secret.png"), "tex.png") + body)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(asset / "tex.png")
    assert asset_files(asset / "a.ply") == [Path("a.ply"), Path("tex.png")]
    assert np.allclose(load_mesh(asset / "a.ply").bounds, [[0, 0, 0], [1, 1, 0]])


def test_symlink_loop_is_a_reason_not_a_crash(layout):
    asset, _ = layout
    mesh = _obj(asset, "map_Kd loop.png\n")
    os.symlink("loop.png", asset / "loop.png")
    assert asset_files(mesh) == [Path("a.obj"), Path("a.mtl")]


def test_huge_reference_lists_are_refused_not_walked(layout):
    asset, _ = layout
    mesh = _obj(asset, "map_Kd " + " ".join(f"w{i}" for i in range(120_000)) + "\n")
    with pytest.raises(MeshError, match=r"a\.mtl: more than 100,000 possible file references"):
        asset_files(mesh)
    (asset / "a.mtl").write_text("newmtl m\nmap_Kd tex.png -" + "x" * 5000 + "\n")  # names too long to exist
    assert asset_files(mesh) == [Path("a.obj"), Path("a.mtl")]
