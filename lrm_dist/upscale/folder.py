"""``upscale_folder``: upscale every image of a folder into another folder (what ``lrm-dist upscale`` runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrm_dist.log import get_logger, progress
from lrm_dist.upscale.config import UpscaleConfig

log = get_logger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def read_image(path: Path) -> np.ndarray:
    """An image as HxW (grey), HxWx3 or HxWx4 uint8, or HxW uint16 for 16-bit greyscale."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im).astype(np.uint16)
        if im.mode in ("RGBA", "RGB", "L"):
            return np.asarray(im)
        transparent = im.mode in ("LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        return np.asarray(im.convert("RGBA" if transparent else "RGB"))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an upscaled array as PNG (16-bit greyscale stays 16-bit)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype == np.uint16 and image.ndim != 2:
        raise ValueError(f"{path}: 16-bit output is only written for greyscale, got shape {image.shape}")
    Image.fromarray(image).save(path)


def upscale_folder(in_dir: str | Path, out_dir: str | Path, cfg: UpscaleConfig, overwrite: bool = False) -> list[Path]:
    """Upscale the images directly in ``in_dir`` into ``out_dir/<stem>.png``; existing outputs are skipped
    unless ``overwrite``. Returns the written paths."""
    from lrm_dist.upscale.actor import Upscaler

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise FileNotFoundError(f"input folder not found: {in_dir}")
    sources = sorted(p for p in in_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    todo = [p for p in sources if overwrite or not (out_dir / f"{p.stem}.png").exists()]
    log.info("upscale %s -> %s: %d images, %d to do", in_dir, out_dir, len(sources), len(todo))
    if not todo:
        return []
    upscaler = Upscaler(cfg)
    written = []
    batches = [todo[i : i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    for batch in progress(batches, desc="upscale", unit="batch"):
        for path, image in zip(batch, upscaler.upscale_images([read_image(p) for p in batch]), strict=True):
            write_png(out_dir / f"{path.stem}.png", image)
            written.append(out_dir / f"{path.stem}.png")
    log.info("upscale done: %s", upscaler.stats())
    return written
