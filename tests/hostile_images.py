"""Real hostile image files for the tests: a PNG whose header claims a huge size, a truncated PNG,
16-bit greyscale with known values (helpers, no fixtures: import them with ``from tests.hostile_images``)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

GREY16_VALUES = np.array([[0, 257, 32768, 65535]], np.uint16)
GREY16_AS_8BIT = [0, 1, 128, 255]  # round(v * 255 / 65535)


def png_bytes(array: np.ndarray) -> bytes:
    """``array`` saved as PNG (Pillow picks the mode from the dtype and channels)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG header (IHDR with a correct CRC) claiming ``width`` x ``height``: a decompression bomb's signature."""
    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def truncated_png(side: int = 64) -> bytes:
    """A noisy RGBA PNG cut in the middle of its pixel data."""
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 4), dtype=np.uint8)
    data = png_bytes(noise)
    return data[: len(data) // 2]


def grey16_png(tile: tuple[int, int] = (1, 1)) -> bytes:
    """A 16-bit greyscale PNG of ``GREY16_VALUES`` tiled ``tile`` times (rows, columns)."""
    return png_bytes(np.tile(GREY16_VALUES, tile))
