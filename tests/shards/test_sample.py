"""The shard sample contract: member names, encodings and the round trip."""

import json
import re

import numpy as np
import pytest

from lrm_dist.images import BadImage
from lrm_dist.shards.sample import decode_sample, encode_depth, encode_sample
from tests.hostile_images import grey16_png, png_bomb, png_bytes, truncated_png

from shard_helpers import fake_sample


def test_members_are_named_and_sorted_per_contract():
    m = encode_sample(fake_sample("chair-01", views=3))
    names = list(m)
    assert names == sorted(names)
    assert names[:3] == ["chair-01.000.depth.png", "chair-01.000.normal.png", "chair-01.000.rgba.png"]
    assert names[-2:] == ["chair-01.cameras.json", "chair-01.meta.json"]
    assert len(names) == 3 * 3 + 2
    meta = json.loads(m["chair-01.meta.json"])
    assert meta["schema_version"] == "2" and meta["n_views"] == 3


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
    ("000.depth.png", truncated_png(), r"not a readable image \(OSError: image file is truncated"),
    ("000.normal.png", b"GIF89a not a png", r"not a readable image \(not a PNG file\)"),
    ("001.rgba.png", grey16_png(), "image mode is I;16, expected RGBA"),
    ("000.depth.png", png_bytes(np.zeros((8, 8, 4), np.uint8)), "image mode is RGBA, expected I;16"),
])
def test_bad_member_images_are_bad_image_errors_naming_sample_and_member(member, data, reason):
    raw = {"__key__": "a", **{k.split(".", 1)[1]: v for k, v in encode_sample(fake_sample("a", views=2)).items()}}
    raw[member] = data
    with pytest.raises(BadImage, match=f"^sample a member {re.escape(member)}: {reason}"):
        decode_sample(raw)
