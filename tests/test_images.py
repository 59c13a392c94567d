"""The one image-decoding guard (``lrm_dist.images``): limits checked on the header, every failure a one-line BadImage."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lrm_dist.images import BadImage, decode_image, grey16, rgba8, rgba8_and_alpha
from tests.hostile_images import GREY16_AS_8BIT, GREY16_VALUES, grey16_png, png_bomb, png_bytes


def _saved(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def test_16_bit_grey_scales_to_8_bit_and_keeps_16_bit_values():
    assert decode_image(grey16_png(), "g.png", rgba8)[0, :, :3].tolist() == [[v] * 3 for v in GREY16_AS_8BIT]
    assert decode_image(grey16_png(), "g.png", grey16).tolist() == GREY16_VALUES.tolist()


def test_32_bit_integer_grey_is_clipped_to_16_bits_then_scaled():
    tiff = _saved(np.array([[-5, 0, 65535, 70000]], np.int32), "TIFF")
    assert decode_image(tiff, "i.tif", rgba8)[0, :, 0].tolist() == [0, 0, 255, 255]


def test_float_pixels_are_refused_by_name():
    tiff = _saved(np.array([[0.0, 0.5]], np.float32), "TIFF")
    with pytest.raises(BadImage, match=r"^f\.tif: 32-bit float pixels are not supported"):
        decode_image(tiff, "f.tif", rgba8)


def test_pixel_limit_is_checked_on_the_header_and_pillow_bomb_checks_are_bad_images():
    with pytest.raises(BadImage, match=r"^x: image is 200x100 \(0.0 megapixels\), over the 0.0 megapixel limit; not decoded"):
        decode_image(png_bomb(200, 100), "x", max_pixels=10_000)
    with pytest.raises(BadImage, match=r"^x: image too large to decode safely \(DecompressionBombWarning"):
        decode_image(png_bomb(10000, 10000), "x", max_pixels=10**9)  # over Pillow's warning limit only
    with pytest.raises(BadImage, match=r"^x: image is 40x8; sides must be between 16 and 64 pixels"):
        decode_image(png_bomb(40, 8), "x", sides=(16, 64))


def test_only_the_listed_formats_open():
    gif = _saved(np.zeros((4, 4), np.uint8), "GIF")
    with pytest.raises(BadImage, match=r"^a\.gif: not a readable image \(not a PNG, JPEG, WEBP, BMP or TIFF file\)$"):
        decode_image(gif, "a.gif")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # Pillow would hand EPS to Ghostscript
    with pytest.raises(BadImage, match="not a readable image"):
        decode_image(eps, "a.eps")


def test_transparency_is_reported():
    rgba, alpha = decode_image(png_bytes(np.zeros((4, 4, 4), np.uint8)), "t.png", rgba8_and_alpha)
    assert alpha and rgba.shape == (4, 4, 4)
    assert not decode_image(png_bytes(np.zeros((4, 4, 3), np.uint8)), "o.png", rgba8_and_alpha)[1]
