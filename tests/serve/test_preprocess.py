"""Input images: alpha handling, recentring, and one-line errors for bad inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from lrm_dist.images import BadImage
from lrm_dist.serve.preprocess import check_image, expand_inputs, load_rgba, prepare_image
from tests.hostile_images import GREY16_AS_8BIT, grey16_png, png_bomb, truncated_png
from tests.serve.conftest import rgba_image


def test_rgba_object_is_centred_scaled_and_put_on_white(tmp_path):
    # A 30x30 red square off-centre in an 80x64 image.
    out = prepare_image(rgba_image(tmp_path / "a.png"), size=100, foreground_ratio=0.5)
    assert out.shape == (3, 100, 100) and out.dtype == np.float32
    red = (out[0] > 0.6) & (out[1] < 0.3)
    rows, cols = np.nonzero(red)
    assert abs(rows.mean() - 49.5) < 1.0 and abs(cols.mean() - 49.5) < 1.0
    assert 48 <= rows.max() - rows.min() + 1 <= 52
    assert np.allclose(out[:, 0, 0], 1.0) and np.allclose(out[:, -1, -1], 1.0)


def test_kept_framing_keeps_the_object_where_it_is(tmp_path):
    """framing="keep": the 80x64 image is padded to 80x80 (8 rows of white above and below) and resized, so the
    red square keeps its offset and its share of the frame."""
    out = prepare_image(rgba_image(tmp_path / "a.png"), size=40, framing="keep")
    assert out.shape == (3, 40, 40) and out.dtype == np.float32
    rows, cols = np.nonzero((out[0] > 0.6) & (out[1] < 0.3))
    # x 20..50 of 80 -> 10..25 of 40; y 10..40 of 64, +8 padding -> 18..48 of 80 -> 9..24 of 40
    assert abs(cols.min() - 10) <= 1 and abs(cols.max() - 24) <= 1
    assert abs(rows.min() - 9) <= 1 and abs(rows.max() - 23) <= 1
    assert np.allclose(out[:, 0, 0], 1.0) and np.allclose(out[:, -1, -1], 1.0)
    with pytest.raises(ValueError, match="framing"):
        prepare_image(rgba_image(tmp_path / "b.png"), size=40, framing="centre")


def test_not_an_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("hello")
    with pytest.raises(BadImage, match=r"x\.png: not a readable image"):
        prepare_image(bad, 56)
    with pytest.raises(BadImage, match="image bytes: not a readable image"):
        prepare_image(b"\x89PNG broken", 56)


def test_empty_alpha(tmp_path):
    path = tmp_path / "empty.png"
    Image.fromarray(np.zeros((64, 64, 4), np.uint8), "RGBA").save(path)
    with pytest.raises(BadImage, match="empty.png: alpha channel is empty"):
        prepare_image(path, 56)


def test_wrong_size(tmp_path):
    path = rgba_image(tmp_path / "small.png", size=(20, 64), box=(2, 2, 10, 10))
    with pytest.raises(BadImage, match=r"small.png: image is 20x64; sides must be between 32 and 8192"):
        prepare_image(path, 56)


def test_opaque_rgb_needs_rembg_or_never(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((48, 48, 3), 90, np.uint8), "RGB").save(path)
    try:
        import rembg  # noqa: F401
    except ImportError:
        with pytest.raises(BadImage, match="photo.jpg: image has no transparent background and rembg is not installed"):
            prepare_image(path, 56)
    out = prepare_image(path, 56, foreground_ratio=1.0, mode="never")
    assert np.allclose(out, 90 / 255, atol=0.01)


def test_expand_inputs_walks_folders_and_numbers_clashes(tmp_path, caplog):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    rgba_image(tmp_path / "in" / "b.png")
    rgba_image(tmp_path / "in" / "sub" / "a.png")
    rgba_image(tmp_path / "in" / "sub" / "chair.front.png")
    (tmp_path / "in" / "notes.txt").write_text("x")
    (tmp_path / "in" / "sub" / "turntable.gif").write_bytes(b"GIF89a")
    (tmp_path / "in" / ".DS_Store").write_bytes(b"x")
    with caplog.at_level("WARNING"):
        found = expand_inputs([tmp_path / "in"])
    assert [(p.name, str(s)) for p, s in found] == [("b.png", "b"), ("a.png", "sub/a"), ("chair.front.png", "sub/chair.front")]
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 1 and "skipping 2 file(s)" in skipped[0]  # the hidden file is not counted
    assert "notes.txt" in skipped[0] and "sub/turntable.gif" in skipped[0] and ".DS_Store" not in skipped[0]
    # The same file twice, a name that differs in case only, and a file whose own name is the next number.
    rgba_image(tmp_path / "B.webp")
    rgba_image(tmp_path / "b-2.png")
    found = expand_inputs([tmp_path / "in" / "b.png", tmp_path / "in", tmp_path / "B.webp", tmp_path / "b-2.png"])
    assert [str(s) for _, s in found] == ["b", "b-3", "sub/a", "sub/chair.front", "B-4", "b-2"]
    with pytest.raises(FileNotFoundError, match="image not found"):
        expand_inputs([tmp_path / "missing.png"])


@pytest.mark.parametrize(("data", "reason"), [
    (png_bomb(20000, 20000), "image too large to decode safely"),  # past Pillow's own bomb limit
    (png_bomb(9000, 9000), r"image is 9000x9000; sides must be between 32 and 8192 pixels"),  # under Pillow's limit
    (png_bomb(20000, 60), r"image is 20000x60; sides must be between 32 and 8192"),
    (truncated_png(), r"not a readable image \(OSError: image file is truncated\)"),
    (b"", r"empty image \(0 bytes\)"),
])
def test_hostile_images_are_one_line_bad_image_errors(tmp_path, data, reason):
    path = tmp_path / "hostile.png"
    path.write_bytes(data)
    for source, name in ((path, str(path)), (data, "image bytes")):
        with pytest.raises(BadImage) as err:
            prepare_image(source, 56)
        assert re.fullmatch(f"{re.escape(name)}: {reason}.*", str(err.value)) and "\n" not in str(err.value)
        with pytest.raises(BadImage, match=reason):
            check_image(source)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    path.write_bytes(grey16_png(tile=(32, 8)))  # 32x32
    rgba, has_alpha = load_rgba(path)
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8 and not has_alpha
    assert rgba[0, :4, :3].tolist() == [[v] * 3 for v in GREY16_AS_8BIT] and (rgba[..., 3] == 255).all()
    check_image(path, mode="never")


def test_transparent_colour_key_counts_as_alpha(tmp_path):
    path = tmp_path / "keyed.png"
    arr = np.zeros((40, 40, 3), np.uint8)
    arr[10:20, 10:20] = (200, 30, 30)
    Image.fromarray(arr, "RGB").save(path, transparency=(0, 0, 0))
    rgba, has_alpha = load_rgba(path)
    assert has_alpha and rgba[0, 0, 3] == 0 and rgba[15, 15, 3] == 255
