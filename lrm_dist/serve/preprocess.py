"""Input images -> the LRM's source image: foreground mask, recentring, rescaling, white background.

RGBA inputs use their alpha; images without transparency go through ``rembg`` (the optional
``rembg`` extra) unless ``remove_background='never'``. The object's bounding box is centred and
scaled so its longer side is ``foreground_ratio`` of the output side, like OpenLRM's preprocessing,
and composited over white (the background the source views were trained with).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lrm_dist.images import IMAGE_SUFFIXES, BadImage, decode_image, rgba8_and_alpha
from lrm_dist.log import get_logger

log = get_logger(__name__)

MIN_SIDE, MAX_SIDE = 32, 8192
ALPHA_CUTOFF = 8  # alpha values at or below this count as background when finding the object


def load_rgba(source: str | Path | bytes, name: str | None = None) -> tuple[np.ndarray, bool]:
    """Read an image file or encoded bytes as RGBA uint8 [H, W, 4]; also says whether it had transparency.

    Decoding goes through ``lrm_dist.images.decode_image`` (size checked on the header, so a bomb is
    refused before it is decoded); every problem is a ``BadImage`` naming the image.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "image bytes")
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise FileNotFoundError(f"image not found: {source}")
    rgba, has_alpha = decode_image(source, name, rgba8_and_alpha, sides=(MIN_SIDE, MAX_SIDE))
    return rgba, has_alpha and bool((rgba[..., 3] < 255).any())


def _rembg(name: str):
    """The rembg module (optional dependency), or a ``BadImage`` saying why ``name`` needs it."""
    try:
        import rembg
    except ImportError:
        raise BadImage(
            f"{name}: image has no transparent background and rembg is not installed; "
            "install it (pip install 'lrm-dist[rembg]'), pass an RGBA cut-out, or set serve.remove_background=never"
        ) from None
    return rembg


def remove_background(rgba: np.ndarray, name: str) -> np.ndarray:
    """Cut the object out of an opaque image with rembg (optional dependency)."""
    out = _rembg(name).remove(Image.fromarray(rgba[..., :3], "RGB"))
    return np.asarray(out.convert("RGBA"))


def _needs_rembg(has_alpha: bool, mode: str) -> bool:
    return mode == "always" or (mode == "auto" and not has_alpha)


def foreground(rgba: np.ndarray, has_alpha: bool, mode: str, name: str) -> np.ndarray:
    """RGBA with the object's alpha, following ``mode`` (auto | always | never)."""
    if _needs_rembg(has_alpha, mode):
        rgba = remove_background(rgba, name)
    elif not has_alpha:
        rgba = rgba.copy()
        rgba[..., 3] = 255
    if not (rgba[..., 3] > ALPHA_CUTOFF).any():
        raise BadImage(f"{name}: alpha channel is empty (no foreground pixels)")
    return rgba


def recentre(rgba: np.ndarray, size: int, foreground_ratio: float) -> np.ndarray:
    """Crop to the object, scale its longer side to ``foreground_ratio * size``, centre it on white.

    Returns float32 [3, size, size] RGB in [0, 1].
    """
    rows, cols = np.nonzero(rgba[..., 3] > ALPHA_CUTOFF)
    crop = Image.fromarray(rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], "RGBA")
    scale = foreground_ratio * size / max(crop.size)
    new_w, new_h = max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))
    crop = crop.resize((new_w, new_h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    canvas.alpha_composite(crop, ((size - new_w) // 2, (size - new_h) // 2))
    return np.asarray(canvas.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


def keep_framing(rgba: np.ndarray, size: int) -> np.ndarray:
    """The image as it is framed: composited on white, padded to a square (centred), resized to ``size``.

    Returns float32 [3, size, size] RGB in [0, 1].
    """
    h, w = rgba.shape[:2]
    side = max(h, w)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(Image.fromarray(np.ascontiguousarray(rgba), "RGBA"), ((side - w) // 2, (side - h) // 2))
    if side != size:
        canvas = canvas.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(canvas.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


def check_image(source: str | Path | bytes, mode: str = "auto", name: str | None = None) -> None:
    """Raise ``BadImage`` for an input ``prepare_image`` would refuse, without running rembg or the model.

    Decodes the image (size, format, alpha); an image that needs rembg only checks that rembg imports.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "image bytes")
    rgba, has_alpha = load_rgba(source, name)
    if _needs_rembg(has_alpha, mode):
        _rembg(name)
    else:
        foreground(rgba, has_alpha, mode, name)


def prepare_image(
    source: str | Path | bytes, size: int, foreground_ratio: float = 0.8, mode: str = "auto", name: str | None = None,
    framing: str = "recentre",
) -> np.ndarray:
    """Load, cut out, recentre (``framing="recentre"``) or keep the framing (``"keep"``): the LRM's input
    [3, size, size] float32 in [0, 1] on white."""
    name = name or (str(source) if not isinstance(source, bytes) else "image bytes")
    rgba, has_alpha = load_rgba(source, name)
    cut = foreground(rgba, has_alpha, mode, name)
    if framing == "keep":
        return keep_framing(cut, size)
    if framing != "recentre":
        raise ValueError(f"framing must be 'recentre' or 'keep', got {framing!r}")
    return recentre(cut, size, foreground_ratio)


def expand_inputs(inputs: list[str | Path]) -> list[tuple[Path, Path]]:
    """Files and folders -> [(image path, output stem relative to the output folder)], sorted per folder.

    A stem is the image's name without its image suffix (``chair.front.png`` -> ``chair.front``), under
    its sub-folder for folder inputs. Inputs that would share a stem (the same file twice, ``a/x.png``
    and ``b/x.png``, ``x.png`` and ``x.jpg``; compared case-insensitively) get ``-2``, ``-3``, ... after
    the first, so no output overwrites another. Files of other suffixes in a folder are skipped with one
    warning that names them (hidden ones silently).
    """
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file())
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under folder {item}")
            others = [str(p.relative_to(item)) for p in files
                      if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".")]
            if others:
                log.warning("%s: skipping %d file(s) that are not %s images: %s%s", item, len(others),
                            "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES), ", ".join(others[:5]),
                            ", ..." if len(others) > 5 else "")
            found += [(p, p.relative_to(item).with_suffix("")) for p in images]
        elif item.is_file():
            found.append((item, Path(item.stem)))
        else:
            raise FileNotFoundError(f"image not found: {item}")
    natural = {str(stem).casefold() for _, stem in found}
    taken: set[str] = set()
    out = []
    for path, stem in found:
        unique, n = stem, 1
        # A numbered name never takes another input's own stem (``x-2.png`` keeps ``x-2``).
        while (key := str(unique).casefold()) in taken or (n > 1 and key in natural):
            n += 1
            unique = stem.with_name(f"{stem.name}-{n}")
        taken.add(key)
        out.append((path, unique))
    return out
