"""Input images: alpha handling, recentring, and one-line errors for bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lrm_dist.serve.preprocess import ImageError, expand_inputs, prepare_image
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


def test_not_an_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("hello")
    with pytest.raises(ImageError, match=r"x\.png: not a readable image"):
        prepare_image(bad, 56)
    with pytest.raises(ImageError, match="image bytes: not a readable image"):
        prepare_image(b"\x89PNG broken", 56)


def test_empty_alpha(tmp_path):
    path = tmp_path / "empty.png"
    Image.fromarray(np.zeros((64, 64, 4), np.uint8), "RGBA").save(path)
    with pytest.raises(ImageError, match="empty.png: alpha channel is empty"):
        prepare_image(path, 56)


def test_wrong_size(tmp_path):
    path = rgba_image(tmp_path / "small.png", size=(20, 64), box=(2, 2, 10, 10))
    with pytest.raises(ImageError, match=r"small.png: image is 20x64; sides must be between 32 and 8192"):
        prepare_image(path, 56)


def test_opaque_rgb_needs_rembg_or_never(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((48, 48, 3), 90, np.uint8), "RGB").save(path)
    try:
        import rembg  # noqa: F401
    except ImportError:
        with pytest.raises(ImageError, match="photo.jpg: image has no transparent background and rembg is not installed"):
            prepare_image(path, 56)
    out = prepare_image(path, 56, foreground_ratio=1.0, mode="never")
    assert np.allclose(out, 90 / 255, atol=0.01)


def test_expand_inputs_walks_folders_and_rejects_clashes(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    rgba_image(tmp_path / "in" / "b.png")
    rgba_image(tmp_path / "in" / "sub" / "a.png")
    (tmp_path / "in" / "notes.txt").write_text("x")
    found = expand_inputs([tmp_path / "in"])
    assert [(p.name, str(s)) for p, s in found] == [("b.png", "b"), ("a.png", "sub/a")]
    with pytest.raises(ValueError, match="same outputs: b"):
        expand_inputs([tmp_path / "in" / "b.png", tmp_path / "in"])
    with pytest.raises(FileNotFoundError, match="image not found"):
        expand_inputs([tmp_path / "missing.png"])
