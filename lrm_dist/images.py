"""Decoding untrusted images (uploads, input folders, shard members) behind one guard.

Every stage that turns image bytes into pixels calls ``decode_image``: only the listed formats are
opened, the header's size is checked against a pixel limit before any pixel is decoded (a few
kilobytes can claim 20000x20000), and whatever goes wrong while decoding (truncated data, garbage,
Pillow's own decompression-bomb check, an unsupported pixel mode) becomes ``BadImage``: a
``ValueError`` whose message is one line naming the input. ``rgba8`` and ``grey16`` turn the decoded
image into arrays with 16-bit greyscale scaled, not clipped; ``encode_image`` is the one encoder of the
images the project writes (shard members).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

T = TypeVar("T")

MAX_PIXELS = 8192 * 8192
"""Default pixel limit (width x height) checked on the header before decoding."""
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # file names of those formats
"""Pillow formats opened for user images (no EPS, which runs Ghostscript, nor the exotic plugins)."""
PNG_ONLY = ("PNG",)
GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class BadImage(ValueError):
    """An image that cannot be used; ``str(err)`` is one line naming the input and the reason."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it): an exception as a reason in a one-line error."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def decode_image(
    source: str | Path | bytes, name: str, convert: Callable[[Image.Image], T] = np.asarray,
    max_pixels: int = MAX_PIXELS, formats: tuple[str, ...] = IMAGE_FORMATS, sides: tuple[int, int] = (1, 1 << 31),
) -> T:
    """``convert(image)`` of a fully decoded image whose header passed the size checks; any failure -> ``BadImage``.

    The header's width x height must be at most ``max_pixels`` and each side within ``sides`` (min, max).
    ``convert`` may raise ``BadImage(reason)`` itself (e.g. for a mode it does not take); ``name`` is prefixed.
    """
    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    if (len(source) if in_memory else Path(source).is_file() and Path(source).stat().st_size) == 0:
        raise BadImage(f"{name}: empty image (0 bytes)")
    if in_memory:
        source = io.BytesIO(bytes(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=list(formats)) as image:
                width, height = image.size
                if min(width, height) < sides[0] or max(width, height) > sides[1]:
                    raise BadImage(f"image is {width}x{height}; sides must be between {sides[0]} and {sides[1]} pixels")
                if width * height > max_pixels:
                    raise BadImage(f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the "
                                   f"{max_pixels / 1e6:.1f} megapixel limit; not decoded")
                image.load()
                return convert(image)
    except BadImage as exc:
        raise BadImage(f"{name}: {exc}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"{name}: image too large to decode safely ({one_line(exc)})") from None
    except UnidentifiedImageError:
        kinds = " or ".join(filter(None, [", ".join(formats[:-1]), formats[-1]]))
        raise BadImage(f"{name}: not a readable image (not a {kinds} file)") from None
    except Exception as exc:  # truncated data, corrupt chunks, odd plugins' errors, out of memory: all the input's fault
        raise BadImage(f"{name}: not a readable image ({one_line(exc)})") from None


def encode_image(array: np.ndarray, image_format: str = "png", quality: int | None = None) -> bytes:
    """PNG, lossless WebP (``quality`` None: every pixel kept, colour under zero alpha included) or lossy
    WebP (colour only; alpha stays lossless)."""
    buf = io.BytesIO()
    image = Image.fromarray(array)
    if image_format == "png":
        image.save(buf, format="PNG", compress_level=4)
    elif quality is None:
        image.save(buf, format="WEBP", lossless=True, exact=True, method=4)
    else:
        image.save(buf, format="WEBP", quality=quality, alpha_quality=100, method=4)
    return buf.getvalue()


def grey16(image: Image.Image) -> np.ndarray:
    """A 16-bit (or 32-bit integer) greyscale image as HxW uint16; 32-bit values are clipped to 0..65535."""
    return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)


def grey16_to_8(grey: np.ndarray) -> np.ndarray:
    """16-bit grey -> 8-bit over the full range, ``round(v * 255 / 65535)`` (Pillow's convert clips at 255)."""
    return ((grey.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries transparency (an alpha band or a transparent palette/colour key)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def rgba8(image: Image.Image) -> np.ndarray:
    """Any 8- or 16-bit image -> HxWx4 uint8 RGBA (16-bit grey scaled to 8 bits); float pixels are refused."""
    if image.mode in GREY16_MODES:
        grey = grey16_to_8(grey16(image))
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    if image.mode == "F":
        raise BadImage("32-bit float pixels are not supported; save the image with 8 or 16 bits per channel")
    return np.asarray(image.convert("RGBA"))


def rgba8_and_alpha(image: Image.Image) -> tuple[np.ndarray, bool]:
    """``(rgba8(image), has_alpha(image))``: a ``convert`` for ``decode_image`` when transparency matters."""
    return rgba8(image), has_alpha(image)



def pixels_of(*modes: str) -> Callable[[Image.Image], np.ndarray]:
    """A ``convert`` returning the pixels unchanged, refusing other modes (shard members have fixed modes)."""

    def convert(image: Image.Image) -> np.ndarray:
        if image.mode not in modes:
            raise BadImage(f"image mode is {image.mode}, expected {' or '.join(modes)}")
        return np.asarray(image)

    return convert
