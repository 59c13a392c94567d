"""The shard sample contract: member names, encodings and the round trip."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from lrm_dist.geometry.occupancy import decode_grid
from lrm_dist.images import BadImage
from lrm_dist.shards.config import ShardsConfig
from lrm_dist.shards.sample import decode_sample, encode_depth, encode_sample
from lrm_dist.shards.writer import ShardBuilder
from tests.hostile_images import grey16_png, png_bomb, png_bytes, truncated_png

from shard_helpers import fake_sample


def test_members_are_named_and_sorted_per_contract():
    m = encode_sample(fake_sample("chair-01", views=3))
    names = list(m)
    assert names == sorted(names)
    assert names[:3] == ["chair-01.000.depth.png16", "chair-01.000.normal.png", "chair-01.000.rgba.png"]
    assert names[-2:] == ["chair-01.cameras.json", "chair-01.meta.json"]
    assert len(names) == 3 * 3 + 2
    meta = json.loads(m["chair-01.meta.json"])
    assert meta["schema_version"] == "3" and meta["n_views"] == 3


def test_occupancy_member_round_trip_and_absence():
    grid = np.zeros((8, 8, 8), bool)
    grid[2:6, 3:5, 1:7] = True
    s = dict(fake_sample("box-1", views=2, res=16), occupancy=grid)
    members = encode_sample(s)
    assert "box-1.occupancy.npz" in members
    raw = {"__key__": "box-1", **{k.split(".", 1)[1]: v for k, v in members.items()}}
    assert np.array_equal(decode_sample(raw)["occupancy"], grid)
    plain = encode_sample(fake_sample("box-2", views=2, res=16))
    assert not any(k.endswith("occupancy.npz") for k in plain)
    raw = {"__key__": "box-2", **{k.split(".", 1)[1]: v for k, v in plain.items()}}
    assert decode_sample(raw)["occupancy"] is None


def test_round_trip_values():
    s = fake_sample("a_1-x", views=2, res=16)
    raw = {"__key__": "a_1-x", **{k.split(".", 1)[1]: v for k, v in encode_sample(s).items()}}
    d = decode_sample(raw)
    assert d["asset_id"] == "a_1-x" and d["category"] == "chair"
    np.testing.assert_array_equal(d["rgba"], s["rgba"])
    fg = s["depth"] > 0
    assert np.abs(d["depth"][fg] - s["depth"][fg]).max() <= 0.5e-4 + 1e-6
    assert (d["depth"][~fg] == 0).all()
    cos = (d["normal"] * s["normal"]).sum(-1)[fg]
    assert cos.min() > 0.999
    assert (d["normal"][~fg] == 0).all()
    np.testing.assert_allclose(d["c2w"], s["c2w"], atol=1e-6)
    np.testing.assert_allclose(d["intrinsics"], s["intrinsics"], atol=1e-6)
    assert d["rgba"].dtype == np.uint8 and d["depth"].dtype == np.float32 and d["c2w"].dtype == np.float32


def test_depth_out_of_range_is_background_not_clipped():
    enc = encode_depth(np.array([0.0, 1.0, 7.0, np.inf]), 1e-4)
    assert enc.tolist() == [0, 10000, 0, 0]


def test_ids_with_dots_are_refused():
    with pytest.raises(ValueError, match="first dot"):
        encode_sample(fake_sample("bad.id"))


def test_missing_view_is_an_error():
    raw = {k.split(".", 1)[1]: v for k, v in encode_sample(fake_sample("a", views=2)).items()}
    del raw["001.normal.png"]
    with pytest.raises(ValueError, match="normal views"):
        decode_sample(raw)


@pytest.mark.parametrize(("member", "data", "reason"), [
    ("001.rgba.png", png_bomb(20000, 20000), "image too large to decode safely"),
    ("001.rgba.png", png_bomb(8000, 8500), r"image is 8000x8500 \(68.0 megapixels\), over the 67.1 megapixel limit"),
    ("000.depth.png16", truncated_png(), r"not a readable image \(OSError: image file is truncated"),
    ("000.normal.png", b"GIF89a not a png", r"not a readable image \(not a PNG file\)"),
    ("001.rgba.png", grey16_png(), "image mode is I;16, expected RGBA"),
    ("000.depth.png16", png_bytes(np.zeros((8, 8, 4), np.uint8)), "image mode is RGBA, expected I;16"),
])
def test_bad_member_images_are_bad_image_errors_naming_sample_and_member(member, data, reason):
    raw = {"__key__": "a", **{k.split(".", 1)[1]: v for k, v in encode_sample(fake_sample("a", views=2)).items()}}
    raw[member] = data
    with pytest.raises(BadImage, match=f"^sample a member {re.escape(member)}: {reason}"):
        decode_sample(raw)


def _raw(members: dict[str, bytes]) -> dict:
    return {"__key__": next(iter(members)).split(".", 1)[0], **{k.split(".", 1)[1]: v for k, v in members.items()}}


def _schema2(members: dict) -> dict:
    """The same sample (members or raw fields) as a schema 2 shard holds it: depth named ``NNN.depth.png``."""
    return {k.removesuffix("16") if k.endswith(".depth.png16") else k: v for k, v in members.items()}


def test_schema_2_depth_name_is_still_read():
    raw = _raw(encode_sample(fake_sample("old-1", views=2)))
    old = _schema2(raw)
    assert "000.depth.png" in old and not any(k.endswith("png16") for k in old)
    new, got = decode_sample(raw), decode_sample(old)
    for key in ("rgba", "depth", "normal"):
        np.testing.assert_array_equal(got[key], new[key])
    old["001.depth.png"] = truncated_png()  # errors name the member as the shard has it
    with pytest.raises(BadImage, match=r"^sample old-1 member 001\.depth\.png: not a readable image"):
        decode_sample(old)


def _write_shard(path: Path, samples: list[dict[str, bytes]]) -> Path:
    """A shard of these samples' members, written by the project's writer."""
    builder = ShardBuilder()
    for members in samples:
        builder.add(next(iter(members)).split(".", 1)[0], members, "h1")
    builder.build(path, path.name)
    builder.discard()
    return path


@pytest.mark.parametrize("spec", ["rgb8", "torchrgb", "pil", "l8", "rgba8"])
def test_standard_webdataset_decoders_pass_depth_on_as_the_16_bit_png(tmp_path, spec):
    s = fake_sample("std-1", views=2)
    written = encode_sample(s)
    assert encode_depth(s["depth"], 1e-4).max() > 255  # what an 8-bit image decoder would clip
    shard = _write_shard(tmp_path / "shard-000000.tar", [written])
    (got,) = wds.WebDataset(str(shard), shardshuffle=False).decode(spec)
    for v in range(2):
        depth = got[f"{v:03d}.depth.png16"]
        assert isinstance(depth, bytes) and depth == written[f"std-1.{v:03d}.depth.png16"]
    assert got["meta.json"]["asset_id"] == "std-1" and not isinstance(got["000.rgba.png"], bytes)


def _doc_snippet() -> str:
    text = (Path(__file__).parents[2] / "docs" / "render.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (snippet,) = [b for b in blocks if "def read_shard(" in b]
    return snippet


def _read_as_documented(shard: Path) -> list[dict]:
    """The samples of ``shard`` as the plain-webdataset reader of docs/render.md gives them."""
    namespace: dict = {}
    exec(compile(_doc_snippet(), "docs/render.md", "exec"), namespace)
    return list(namespace["read_shard"](str(shard)))


def test_the_documented_plain_webdataset_reader_reads_every_member(tmp_path):
    grid = np.zeros((8, 8, 8), bool)
    grid[1:5, 2:7, 3:6] = True
    written = [dict(fake_sample("doc-a", views=3, res=16, seed=1), occupancy=grid),
               fake_sample("doc-b", views=2, res=16, seed=2)]
    shard = _write_shard(tmp_path / "shard-000000.tar", [encode_sample(s) for s in written])
    got = _read_as_documented(shard)
    assert [g["asset_id"] for g in got] == ["doc-a", "doc-b"]
    for s, g in zip(written, got):
        np.testing.assert_array_equal(g["rgba"], s["rgba"])
        assert g["rgba"].dtype == np.uint8 and g["rgba"].shape[-1] == 4
        fg = s["depth"] > 0
        assert g["depth"].dtype == np.float32 and (g["depth"][~fg] == 0).all()
        assert np.abs(g["depth"][fg] - s["depth"][fg]).max() <= 0.5e-4 + 1e-6  # half a depth_scale step
        assert (g["normal"] * s["normal"]).sum(-1)[fg].min() > 0.999 and (g["normal"][~fg] == 0).all()
        np.testing.assert_allclose(g["normal"], decode_sample(_raw(encode_sample(s)))["normal"], atol=1e-6)
        np.testing.assert_allclose(g["c2w"], s["c2w"], atol=1e-6)
        np.testing.assert_allclose(g["intrinsics"], s["intrinsics"], atol=1e-6)
    np.testing.assert_array_equal(got[0]["occupancy"], grid)
    assert got[1]["occupancy"] is None


def test_plain_webdataset_occupancy_and_schema_2_depth_as_documented(tmp_path):
    grid = np.zeros((8, 8, 8), bool)
    grid[2:6, 0:3, 4:8] = True
    s = dict(fake_sample("doc-c", views=2, res=16), occupancy=grid)
    shard = str(_write_shard(tmp_path / "old.tar", [_schema2(encode_sample(s))]))
    namespace: dict = {}
    exec(compile(_doc_snippet(), "docs/render.md", "exec"), namespace)
    (raw,) = wds.WebDataset(shard, shardshuffle=False)
    old_depth = wds.handle_extension("depth.png", namespace["png16"])
    (got,) = wds.WebDataset(shard, shardshuffle=False).decode(old_depth, "rgba8")
    np.testing.assert_array_equal(got["001.depth.png"], encode_depth(s["depth"][1], 1e-4))
    occ = got["occupancy.npz"]  # webdataset's own npz handler: a dict of plain arrays
    r = int(occ["resolution"])
    np.testing.assert_array_equal(np.unpackbits(occ["bits"], count=r**3).reshape(r, r, r).astype(bool), grid)
    np.testing.assert_array_equal(decode_grid(raw["occupancy.npz"]), grid)


def _smooth_rgba(views: int, res: int) -> np.ndarray:
    """Render-like views: smooth colour gradients, a disc of opaque alpha with a soft edge, zero outside."""
    yy, xx = np.mgrid[0:res, 0:res] / (res - 1)
    r = np.hypot(xx - 0.5, yy - 0.5)
    alpha = np.clip((0.4 - r) * 40, 0, 1) * 255
    out = np.zeros((views, res, res, 4), np.uint8)
    for v in range(views):
        out[v, ..., 0], out[v, ..., 1], out[v, ..., 2] = 200 * xx + 20 * v, 180 * yy + 30, 120 + 60 * xx * yy
        out[v, ..., 3] = alpha
    return out


def test_lossless_webp_members_decode_to_the_same_arrays():
    s = fake_sample("webp-1", views=2, res=16)
    members = encode_sample(s, ShardsConfig(image_format="webp"))
    assert sorted(k.split(".", 1)[1] for k in members if k.startswith("webp-1.000.")) == [
        "000.depth.png16", "000.normal.webp", "000.rgba.webp"]
    got, png = decode_sample(_raw(members)), decode_sample(_raw(encode_sample(s)))
    np.testing.assert_array_equal(got["rgba"], s["rgba"])  # every pixel, colour under zero alpha included
    np.testing.assert_array_equal(got["normal"], png["normal"])
    np.testing.assert_array_equal(got["depth"], png["depth"])
    assert "rgba_webp_quality" not in json.loads(members["webp-1.meta.json"])


def test_lossy_webp_keeps_the_alpha_and_most_of_the_colour():
    s = dict(fake_sample("lossy-1", views=2, res=64), rgba=_smooth_rgba(2, 64))
    members = encode_sample(s, ShardsConfig(image_format="webp", webp_quality=95))
    got = decode_sample(_raw(members))["rgba"]
    np.testing.assert_array_equal(got[..., 3], s["rgba"][..., 3])
    fg = s["rgba"][..., 3] == 255
    err = got[..., :3].astype(float)[fg] - s["rgba"][..., :3][fg]
    assert 10 * np.log10(255**2 / (err**2).mean()) > 38  # PSNR over the opaque pixels
    assert json.loads(members["lossy-1.meta.json"])["rgba_webp_quality"] == 95
    png = encode_sample(s)
    assert len(members["lossy-1.000.rgba.webp"]) < len(png["lossy-1.000.rgba.png"]) / 2


def test_without_normal_maps_the_sample_decodes_with_none():
    s = fake_sample("nonormal-1", views=2, res=16)
    members = encode_sample(s, ShardsConfig(normal_maps=False))
    assert not any(".normal." in k for k in members) and len(members) == 2 * 2 + 2
    d = decode_sample(_raw(members))
    assert d["normal"] is None
    np.testing.assert_array_equal(d["rgba"], s["rgba"])


def test_some_views_without_a_normal_map_are_an_error():
    raw = _raw(encode_sample(fake_sample("partial-1", views=2, res=16)))
    del raw["001.normal.png"]
    with pytest.raises(ValueError, match=r"^sample partial-1: normal views \[0\] != 0\.\.1"):
        decode_sample(raw)


def test_a_broken_webp_member_is_a_bad_image_naming_it():
    raw = _raw(encode_sample(fake_sample("bad-webp", views=2, res=16), ShardsConfig(image_format="webp")))
    raw["001.rgba.webp"] = raw["001.rgba.webp"][:40]
    with pytest.raises(BadImage, match=r"^sample bad-webp member 001\.rgba\.webp: "):
        decode_sample(raw)


def test_webp_quality_needs_the_webp_format():
    with pytest.raises(ValueError, match="shards.webp_quality=90 needs shards.image_format: webp"):
        ShardsConfig(webp_quality=90)


@pytest.mark.parametrize("settings", [{"image_format": "webp"}, {"image_format": "webp", "normal_maps": False}])
def test_the_documented_plain_webdataset_reader_reads_lean_shards(tmp_path, settings):
    written = [fake_sample("lean-a", views=3, res=16, seed=3), fake_sample("lean-b", views=2, res=16, seed=4)]
    shard = _write_shard(tmp_path / "shard-000000.tar", [encode_sample(s, ShardsConfig(**settings)) for s in written])
    got = _read_as_documented(shard)
    assert [g["asset_id"] for g in got] == ["lean-a", "lean-b"]
    for s, g in zip(written, got):
        np.testing.assert_array_equal(g["rgba"], s["rgba"])
        if settings.get("normal_maps", True):
            fg = s["depth"] > 0
            assert (g["normal"] * s["normal"]).sum(-1)[fg].min() > 0.999 and (g["normal"][~fg] == 0).all()
        else:
            assert g["normal"] is None
