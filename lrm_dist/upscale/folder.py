"""``upscale_folder``: upscale every image of a folder into another folder (what ``lrm-dist upscale`` runs).

A file that is not a usable image (garbage, truncated, a decompression bomb, an unsupported mode) or
that the upscaler cannot process is skipped with one logged line naming it; the others are upscaled
and the summary counts the failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lrm_dist.images import GREY16_MODES, IMAGE_SUFFIXES, BadImage, decode_image, grey16, has_alpha, one_line, rgba8
from lrm_dist.log import get_logger, progress
from lrm_dist.upscale.config import UpscaleConfig

log = get_logger(__name__)


@dataclass
class UpscaleSummary:
    """What ``upscale_folder`` did: written outputs, outputs that already existed, and failures."""

    out_dir: str
    written: list[Path] = field(default_factory=list)
    skipped: int = 0
    failures: list[str] = field(default_factory=list)  # one line each, naming the input

    @property
    def failed(self) -> int:
        return len(self.failures)

    def __str__(self) -> str:
        return (f"upscale: {len(self.written)} images upscaled, {self.skipped} already done, {self.failed} failed"
                f" -> {self.out_dir}")


def _upscale_input(image: Image.Image) -> np.ndarray:
    """HxW (grey), HxWx3 or HxWx4 uint8, or HxW uint16 for 16-bit greyscale: what the upscaler takes."""
    if image.mode in GREY16_MODES:
        return grey16(image)
    if image.mode in ("RGBA", "RGB", "L"):
        return np.asarray(image)
    rgba = rgba8(image)
    return rgba if has_alpha(image) else np.ascontiguousarray(rgba[..., :3])


def read_image(path: Path) -> np.ndarray:
    """An image file as the upscaler's input array; ``BadImage`` (one line naming it) when it cannot be used."""
    return decode_image(path, str(path), _upscale_input)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an upscaled array as PNG (16-bit greyscale stays 16-bit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype == np.uint16 and image.ndim != 2:
        raise ValueError(f"{path}: 16-bit output is only written for greyscale, got shape {image.shape}")
    Image.fromarray(image).save(path)


def upscale_folder(
    in_dir: str | Path, out_dir: str | Path, cfg: UpscaleConfig, overwrite: bool = False
) -> UpscaleSummary:
    """Upscale the images directly in ``in_dir`` into ``out_dir/<stem>.png``; existing outputs are skipped
    unless ``overwrite``. Unusable inputs are logged and counted in the summary, never stop the others."""
    from lrm_dist.upscale.actor import Upscaler

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise FileNotFoundError(f"input folder not found: {in_dir}")
    sources = sorted(p for p in in_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    todo = [p for p in sources if overwrite or not (out_dir / f"{p.stem}.png").exists()]
    summary = UpscaleSummary(str(out_dir), skipped=len(sources) - len(todo))
    log.info("upscale %s -> %s: %d images, %d to do", in_dir, out_dir, len(sources), len(todo))
    if not todo:
        return summary

    def failed(message: str) -> None:
        log.error("%s", message)
        summary.failures.append(message)

    upscaler = None
    for batch in progress([todo[i : i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)],
                          desc="upscale", unit="batch"):
        inputs = []
        for path in batch:
            try:
                inputs.append((path, read_image(path)))
            except BadImage as exc:
                failed(str(exc))
        if not inputs:
            continue
        upscaler = upscaler or Upscaler(cfg)
        try:
            done = list(zip(inputs, upscaler.upscale_images([image for _, image in inputs]), strict=True))
        except (ValueError, RuntimeError, MemoryError):  # one image spoils the batch: find it, keep the others
            done = []
            for path, image in inputs:
                try:
                    done.append(((path, image), upscaler.upscale_images([image])[0]))
                except (ValueError, RuntimeError, MemoryError) as exc:
                    failed(f"{path}: cannot upscale ({one_line(exc)})")
        for (path, _), image in done:
            write_png(out_dir / f"{path.stem}.png", image)
            summary.written.append(out_dir / f"{path.stem}.png")
    if upscaler is not None:
        stats = upscaler.stats()
        log.info("upscale done: %d images, %.3f input MP in %.1f s (%.3f input MP/s)", stats["images"],
                 stats["input_mp"], stats["seconds"], stats["input_mp_per_s"])
    return summary
