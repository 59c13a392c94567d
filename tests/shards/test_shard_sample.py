"""The one shard-sample reader (``ShardSample``, ``read_raw_samples``): each member type, only the members
asked for, and one-line errors naming the sample, its shard and the member."""

import io
import json
import tarfile
from collections.abc import Mapping

import numpy as np
import pytest

from lrm_dist.images import BadImage
from lrm_dist.shards.reader import read_raw_samples
from lrm_dist.shards.sample import MAX_JSON_BYTES, BadSample, ShardSample, encode_depth, encode_sample, read_json
from tests.hostile_images import png_bytes, truncated_png
from tests.shards.shard_helpers import fake_sample

URL = "/data/render/shards/shard-000007.tar"


def _grid() -> np.ndarray:
    grid = np.zeros((8, 8, 8), bool)
    grid[2:6, 1:4, 3:7] = True
    return grid


def _raw(sample: dict, url: str | None = URL) -> dict:
    members = encode_sample(sample)
    raw = {"__key__": sample["asset_id"], **{k.split(".", 1)[1]: v for k, v in members.items()}}
    return {**raw, "__url__": url} if url else raw


def test_each_member_type_is_decoded():
    s = dict(fake_sample("a", views=3, res=16), occupancy=_grid())
    got = ShardSample(_raw(s))
    assert got.meta["asset_id"] == "a" and got.n_views == 3 and got.depth_scale() == 1e-4
    c2w, intrinsics = got.cameras()
    assert c2w.shape == (3, 4, 4) and intrinsics.shape == (3, 6) and c2w.dtype == np.float64
    np.testing.assert_allclose(c2w, s["c2w"]) and np.testing.assert_allclose(intrinsics, s["intrinsics"])
    for v in range(3):
        np.testing.assert_array_equal(got.rgba(v), s["rgba"][v])
        np.testing.assert_array_equal(got.depth_steps(v), encode_depth(s["depth"][v], 1e-4))
        fg = s["depth"][v] > 0
        depth = got.depth(v)
        assert depth.dtype == np.float32 and (depth[~fg] == 0).all()
        assert np.abs(depth[fg] - s["depth"][v][fg]).max() <= 0.5e-4 + 1e-6
        normal = got.normal(v)
        assert normal.dtype == np.float32 and (normal[~fg] == 0).all()
        assert (normal * s["normal"][v]).sum(-1)[fg].min() > 0.999
    np.testing.assert_array_equal(got.occupancy(), _grid())
    assert got.member_bytes("001.rgba.png")[:4] == b"\x89PNG"
    assert ShardSample(_raw(fake_sample("b"))).occupancy() is None


def test_schema_2_depth_member_is_read_under_its_own_name():
    raw = _raw(fake_sample("old", views=2))
    old = {k.removesuffix("16") if k.endswith(".depth.png16") else k: v for k, v in raw.items()}
    new_sample, old_sample = ShardSample(raw), ShardSample(old)
    assert old_sample.depth_member(1) == "001.depth.png" and new_sample.depth_member(1) == "001.depth.png16"
    np.testing.assert_array_equal(old_sample.depth(1), new_sample.depth(1))
    assert ShardSample({"__key__": "x"}).depth_member(0) is None


class _Watched(Mapping):
    """A raw sample that records which members are looked up (values or presence)."""

    def __init__(self, raw: dict):
        self.raw, self.touched = raw, set()

    def __getitem__(self, key):
        self.touched.add(key)
        return self.raw[key]

    def __contains__(self, key):
        self.touched.add(key)
        return key in self.raw

    def __iter__(self):
        raise AssertionError("the reader must not walk every member")

    def __len__(self):
        return len(self.raw)


def test_only_the_members_asked_for_are_touched():
    raw = _raw(dict(fake_sample("a", views=3), occupancy=_grid()))
    for name in raw:  # every member but the ones read below is garbage
        if name not in ("__key__", "__url__", "meta.json", "cameras.json", "002.rgba.png", "002.depth.png16"):
            raw[name] = b"garbage, never decoded"
    watched = _Watched(raw)
    got = ShardSample(watched)
    got.cameras()
    got.rgba(2)
    got.depth(2)
    assert watched.touched - {"__key__", "__url__"} == {"meta.json", "cameras.json", "002.rgba.png",
                                                         "002.depth.png16"}
    with pytest.raises(ValueError, match="occupancy.npz"):  # the garbage is there; it was just never read
        got.occupancy()


def _one_line_naming(exc: Exception, member: str) -> str:
    text = str(exc)
    assert "\n" not in text and text.startswith("sample a of shard-000007.tar ") and member in text, text
    return text


@pytest.mark.parametrize(("member", "data", "read", "reason"), [
    ("meta.json", b"{not json", lambda s: s.meta, "not readable JSON (JSONDecodeError"),
    ("meta.json", b"[1, 2]", lambda s: s.meta, "expected a JSON object, got list"),
    ("meta.json", b"[" * 100_000 + b"]" * 100_000, lambda s: s.meta, "not readable JSON (RecursionError"),
    ("meta.json", json.dumps({"n_views": "two"}).encode(), lambda s: s.n_views, "no view count"),
    ("cameras.json", b"\xff\xfe", lambda s: s.cameras(), "not readable JSON"),
    ("cameras.json", json.dumps({"c2w": [[1, 2]], "intrinsics": [[1]]}).encode(), lambda s: s.cameras(),
     "c2w [1, 2] and intrinsics [1, 1] are not [V, 4, 4] and [V, 6]"),
    ("cameras.json", json.dumps({"c2w": []}).encode(), lambda s: s.cameras(), "no camera arrays (KeyError"),
    ("cameras.json", b" " * (MAX_JSON_BYTES + 1), lambda s: s.cameras(),
     f"{MAX_JSON_BYTES + 1} bytes, over the {MAX_JSON_BYTES} byte limit"),
    ("001.rgba.png", b"junk", lambda s: s.rgba(1), "not a readable image (not a PNG file)"),
    ("000.depth.png16", truncated_png(), lambda s: s.depth(0), "not a readable image (OSError"),
    ("000.depth.png16", png_bytes(np.zeros((8, 8, 4), np.uint8)), lambda s: s.depth(0), "image mode is RGBA"),
    ("001.normal.png", b"junk", lambda s: s.normal(1), "not a readable image"),
    ("occupancy.npz", b"PK junk", lambda s: s.occupancy(), "not a readable occupancy grid"),
])
def test_a_bad_member_is_a_one_line_error_naming_sample_shard_and_member(member, data, read, reason):
    raw = _raw(fake_sample("a", views=2))
    raw[member] = data
    with pytest.raises(ValueError) as err:
        read(ShardSample(raw))
    assert isinstance(err.value, (BadSample, BadImage))
    text = _one_line_naming(err.value, f"member {member}: ")
    assert reason in text, text


@pytest.mark.parametrize(("member", "read"), [
    ("meta.json", lambda s: s.meta), ("cameras.json", lambda s: s.cameras()), ("001.rgba.png", lambda s: s.rgba(1)),
    ("001.depth.png16", lambda s: s.depth(1)), ("000.normal.png", lambda s: s.normal(0, np.ones((8, 8), bool))),
])
def test_a_missing_member_is_named(member, read):
    raw = _raw(fake_sample("a", views=2))
    del raw[member]
    with pytest.raises(BadSample) as err:
        read(ShardSample(raw))
    assert _one_line_naming(err.value, member) == f"sample a of shard-000007.tar has no {member} member"


def test_without_a_shard_url_errors_name_the_sample():
    raw = _raw(fake_sample("a", views=2), url=None)
    raw["000.rgba.png"] = b"junk"
    with pytest.raises(BadImage, match=r"^sample a member 000\.rgba\.png: not a readable image"):
        ShardSample(raw).rgba(0)


def test_json_already_decoded_and_bounds():
    assert read_json({"a": 1}, "m") == {"a": 1}
    assert read_json('{"a": 1}', "m") == {"a": 1}
    with pytest.raises(BadSample, match="^m: 11 bytes, over the 10 byte limit"):
        read_json(b'{"a": 1234}', "m", max_bytes=10)
    with pytest.raises(BadSample, match="^m: expected JSON bytes, got int"):
        read_json(5, "m")


def test_occupancy_that_unpacks_past_the_largest_grid_is_refused_before_inflating():
    buf = io.BytesIO()
    np.savez_compressed(buf, bits=np.zeros(40_000_000, np.uint8), resolution=np.int64(8), version=np.int64(1))
    raw = {**_raw(fake_sample("a")), "occupancy.npz": buf.getvalue()}
    with pytest.raises(ValueError, match=r"member occupancy\.npz: not a readable occupancy grid .*over the .* byte limit"):
        ShardSample(raw).occupancy()


def test_read_raw_samples_reads_only_the_named_members(tmp_path):
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for s in (fake_sample("a"), fake_sample("b")):
            for name, data in encode_sample(s).items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    got = list(read_raw_samples(str(shard), {"meta.json", "001.rgba.png"}))
    assert [sorted(r) for r in got] == [["001.rgba.png", "__key__", "__url__", "meta.json"]] * 2
    assert [r["__key__"] for r in got] == ["a", "b"] and got[0]["__url__"] == str(shard)
    assert ShardSample(got[1]).rgba(1).shape == (8, 8, 4)
    with pytest.raises(BadSample, match="^sample b of shard-000000.tar has no cameras.json member$"):
        ShardSample(got[1]).cameras()


def test_a_member_over_the_size_limit_is_left_unread_and_fails_only_its_sample(tmp_path):
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for s in (fake_sample("a"), fake_sample("b")):
            members = encode_sample(s)
            if s["asset_id"] == "a":
                members["a.001.rgba.png"] = b"\0" * 5000  # a hostile, oversized member
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    limit = 4096
    assert max(len(v) for k, v in encode_sample(fake_sample("b")).items()) < limit
    got = list(read_raw_samples(str(shard), lambda name: name.endswith((".rgba.png", ".meta.json")), limit))
    assert [r["__key__"] for r in got] == ["a", "b"]
    assert "cameras.json" not in got[0]  # the name test chose the members
    with pytest.raises(BadSample, match=r"^sample a of shard-000000.tar member 001.rgba.png is 5000 bytes, over the 4096-byte limit"):
        ShardSample(got[0]).rgba(1)
    assert ShardSample(got[0]).rgba(0).shape == (8, 8, 4)  # the sample's other members still read
    assert ShardSample(got[1]).rgba(1).shape == (8, 8, 4)  # and the shard goes on
