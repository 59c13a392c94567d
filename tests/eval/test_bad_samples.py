"""Bad samples become failed rows, never a stopped job: damaged shard tars (read by ``shard_inputs``)
and hostile input views (decoded in ``ReconstructActor``), with real shard bytes and a real tiny model."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from lrm_dist.eval.workers import INPUT_COLUMNS, ReconstructActor, score_row, shard_inputs
from tests.hostile_images import grey16_png, png_bomb, truncated_png
from tests.shards.shard_helpers import members

SHARD = "shard-000000.tar"
KEYS = ("a", "b", "c")


def _tar(samples: dict[str, dict[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for sample in samples.values():
            for name, data in sample.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _pending(keys=KEYS) -> dict[str, dict]:
    return {k: {"category": "chair", "shard": SHARD, "render_settings_hash": "h1", "mesh_path": f"/gt/{k}.obj"}
            for k in keys}


def _inputs(tmp_path, data: bytes, pending: dict[str, dict]) -> dict[str, dict]:
    (tmp_path / SHARD).write_bytes(data)
    rows = list(shard_inputs({"url": str(tmp_path / SHARD), "shard": SHARD}, 0, pending))
    assert len(rows) == len({r["asset_id"] for r in rows})
    return {r["asset_id"]: r for r in rows}


def _offsets(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize(("cut", "error"), [
    (lambda m: m["b.000.rgba.png"].offset_data + 40, "ReadError: unexpected end of data"),  # in a member's data
    (lambda m: m["b.000.depth.png16"].offset, "ReadError: no valid tar header at byte"),  # between members
    (lambda m: m["b.000.depth.png16"].offset + 100, "ReadError: no valid tar header at byte"),  # in a header
])
def test_a_truncated_shard_gives_rows_for_what_is_readable_and_failed_rows_for_the_rest(tmp_path, cut, error):
    data = _tar({k: members(k) for k in KEYS})
    rows = _inputs(tmp_path, data[: cut(_offsets(data))], _pending())
    assert rows["a"]["error"] == "" and rows["a"]["rgba_png"][:4] == b"\x89PNG" and len(rows["a"]["input_c2w"]) == 16
    for key in ("b", "c"):
        assert rows[key]["error"].startswith(f"shard {SHARD} is unreadable after 1 samples ({error}"), rows[key]["error"]
        assert rows[key]["rgba_png"] == b""


def test_a_garbled_header_and_a_missing_sample_or_member_are_failed_rows(tmp_path):
    samples = {k: members(k) for k in KEYS}
    del samples["b"]["b.000.rgba.png"]
    data = _tar(samples)
    rows = _inputs(tmp_path, data, _pending(("a", "b", "c", "gone")))
    assert rows["a"]["error"] == rows["c"]["error"] == ""
    assert rows["b"]["error"] == f"unreadable shard sample: BadSample: sample b of {SHARD} has no 000.rgba.png member"
    assert rows["gone"]["error"] == f"sample with render settings h1 not found in {SHARD} (3 samples read)"
    garbled = bytearray(data)
    start = _offsets(data)["c.000.normal.png"].offset  # c's second member
    garbled[start : start + 100] = b"x" * 100
    rows = _inputs(tmp_path, bytes(garbled), _pending())
    assert rows["b"]["error"].startswith("unreadable shard sample")
    assert rows["c"]["error"].startswith(f"shard {SHARD} is unreadable after 2 samples (ReadError: no valid tar header")


def _batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows as the numpy batch Ray Data hands a ``map_batches`` actor."""
    batch = {}
    for column in INPUT_COLUMNS:
        batch[column] = np.empty(len(rows), dtype=object)
        for i, row in enumerate(rows):
            batch[column][i] = row[column]
    return batch


def test_hostile_input_views_are_failed_rows_and_the_others_are_reconstructed(tmp_path, tiny_checkpoint):
    hostile = {"bomb": png_bomb(20000, 20000), "big": png_bomb(8000, 8500), "cut": truncated_png(),
               "junk": b"junk", "grey16": grey16_png(tile=(8, 2))}
    samples = {"good": members("good")}
    for key, png in hostile.items():
        samples[key] = {**members(key), f"{key}.000.rgba.png": png}
    rows = _inputs(tmp_path, _tar(samples), _pending(samples))
    assert all(r["error"] == "" for r in rows.values())  # the tar is fine: images are decoded by the actor
    actor = ReconstructActor(str(tiny_checkpoint), resolution=16, threshold=0.0, source_distance=None)
    out = actor(_batch(list(rows.values())))
    errors = dict(zip(out["asset_id"], out["error"]))
    assert errors["good"] == "" and errors["grey16"] == ""  # 16-bit grey decodes (scaled to 8 bits)
    assert errors["bomb"].startswith("bad input view: asset bomb member 000.rgba.png: image too large to decode safely")
    assert errors["big"] == ("bad input view: asset big member 000.rgba.png: image is 8000x8500 (68.0 megapixels), "
                             "over the 67.1 megapixel limit; not decoded")
    assert errors["cut"] == "bad input view: asset cut member 000.rgba.png: not a readable image (OSError: image file is truncated)"
    assert errors["junk"] == "bad input view: asset junk member 000.rgba.png: not a readable image (not a PNG file)"
    pngs = dict(zip(out["asset_id"], out["rgba_png"]))
    assert all(pngs[k] == b"" for k in ("bomb", "big", "cut", "junk")) and pngs["good"][:4] == b"\x89PNG"

    i = list(out["asset_id"]).index("bomb")
    settings = {"eval_hash": "h", "checkpoint": "c", "thresholds": [0.01], "n_points": 100, "padding": 0.1, "seed": 0,
                "save_meshes": False}
    scored = score_row({k: v[i] for k, v in out.items()}, str(tmp_path / "eval"), settings)
    assert scored["status"] == "failed" and scored["reason"] == errors["bomb"] and scored["input_file"] is None


def test_a_webp_shard_gives_the_input_view_as_png_with_the_same_pixels(tmp_path):
    from lrm_dist.images import decode_image, rgba8
    from lrm_dist.shards.config import ShardsConfig
    from lrm_dist.shards.sample import encode_sample
    from tests.shards.shard_helpers import fake_sample

    samples = {k: encode_sample(fake_sample(k, seed=i), ShardsConfig(image_format="webp")) for i, k in enumerate(KEYS)}
    assert "a.000.rgba.webp" in samples["a"] and "a.000.rgba.png" not in samples["a"]
    rows = _inputs(tmp_path, _tar(samples), _pending())
    for k in KEYS:
        assert rows[k]["error"] == "" and rows[k]["rgba_png"][:4] == b"\x89PNG"
        want = fake_sample(k, seed=KEYS.index(k))["rgba"][0]
        np.testing.assert_array_equal(decode_image(rows[k]["rgba_png"], k, rgba8), want)
