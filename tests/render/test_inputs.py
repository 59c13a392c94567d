"""Hostile and broken asset files are refused before Blender sees them, with a reason."""

import json
import struct

import pytest

from lrm_dist.render.inputs import AssetInputError, check_asset_file


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
        check_asset_file(str(p))


def test_gltf_relative_refs_inside_folder_pass(tmp_path):
    (tmp_path / "tex.png").write_bytes(b"x")
    (tmp_path / "a.bin").write_bytes(b"\0" * 4)
    p = tmp_path / "a.gltf"
    p.write_text(json.dumps({"asset": {"version": "2.0"}, "buffers": [{"uri": "a.bin", "byteLength": 4}],
                             "images": [{"uri": "tex.png"}, {"uri": "data:image/png;base64,AAAA"}]}))
    assert check_asset_file(str(p)) == p


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
            check_asset_file(uri)
