"""The contact sheet: per category, the best, median and worst assets by IoU, each as
input image | ground truth | reconstruction seen from the input camera, then ground truth | reconstruction
seen from the side (the input camera turned 90 degrees about the vertical): what one view cannot show, how
far each part goes on behind its visible surface, is where single-view reconstructions differ most."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lrm_dist.eval.raster import render_mesh

GT_COLOR = (0.70, 0.72, 0.76)
PRED_COLOR = (0.85, 0.66, 0.45)
LABEL_H = 18
SIDE_TURN_DEGREES = 90.0


def pick_best_median_worst(rows: list[dict]) -> list[tuple[str, dict]]:
    """[("best", row), ("median", row), ("worst", row)] by IoU among ok rows (fewer when fewer rows)."""
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: (-r["iou"], r["asset_id"]))
    if not ok:
        return []
    last, middle = len(ok) - 1, len(ok) // 2
    picks = [("best", 0)] + ([("median", middle)] if 0 < middle < last else []) + ([("worst", last)] if last else [])
    return [(label, ok[i]) for label, i in picks]


def _tile(image: np.ndarray | None, size: int, caption: str) -> Image.Image:
    tile = Image.new("RGB", (size, size + LABEL_H), "white")
    if image is not None:
        tile.paste(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS), (0, LABEL_H))
    else:
        ImageDraw.Draw(tile).text((size // 2 - 20, size // 2), "(empty)", fill=(150, 40, 40))
    ImageDraw.Draw(tile).text((3, 3), caption, fill=(20, 20, 20))
    return tile


def input_image(path: Path, size: int) -> np.ndarray | None:
    """The input view composited on white (as the model saw it), or None when missing."""
    if not path.is_file():
        return None
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    return np.asarray(canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


def turned(c2w: np.ndarray, degrees: float) -> np.ndarray:
    """The camera ``c2w`` (4x4) orbited by ``degrees`` about the canonical frame's vertical axis (z, through the
    object's centre at the origin)."""
    a = np.radians(degrees)
    turn = np.eye(4)
    turn[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return turn @ np.asarray(c2w, dtype=np.float64)


def render_row(row: dict, gt_mesh, pred_mesh, eval_dir: Path, size: int) -> list[Image.Image]:
    """Five tiles of one asset (see the module doc); meshes are trimesh objects in the canonical frame (pred may
    be None)."""
    c2w = np.asarray(row["input_c2w"], dtype=np.float64).reshape(4, 4)
    k = np.asarray(row["input_intrinsics"], dtype=np.float64)
    inp = input_image(eval_dir / row["input_file"], size) if row["input_file"] else None
    tiles = [_tile(inp, size, "input")]
    for camera, where in ((c2w, ""), (turned(c2w, SIDE_TURN_DEGREES), ", side")):
        gt = render_mesh(gt_mesh.vertices, gt_mesh.faces, camera, k, size, GT_COLOR) if gt_mesh is not None else None
        pred = None
        if pred_mesh is not None and len(pred_mesh.faces):
            pred = render_mesh(pred_mesh.vertices, pred_mesh.faces, camera, k, size, PRED_COLOR)
        tiles += [_tile(gt, size, f"ground truth{where}"), _tile(pred, size, f"IoU {row['iou']:.2f}{where}")]
    return tiles


def compose(sheet_rows: list[tuple[str, list[tuple[str, list[Image.Image]]]]], size: int) -> Image.Image:
    """Grid: one line per category, groups of tiles (best, median, worst) side by side; each group's label
    (e.g. "best: <asset id>") is written above it."""
    groups = max((len(g) for _, g in sheet_rows), default=1)
    per_group = max((len(tiles) for _, g in sheet_rows for _, tiles in g), default=1)
    head_w, gap = 90, 10
    width = head_w + groups * (per_group * size + gap)
    line_h = size + 2 * LABEL_H
    sheet = Image.new("RGB", (width, max(1, len(sheet_rows)) * line_h), "white")
    draw = ImageDraw.Draw(sheet)
    for li, (category, group) in enumerate(sheet_rows):
        y = li * line_h
        draw.text((6, y + line_h // 2), category, fill=(0, 0, 0))
        for gi, (label, tiles) in enumerate(group):
            x = head_w + gi * (per_group * size + gap)
            draw.text((x + 3, y + 2), label, fill=(60, 60, 160))
            for ti, tile in enumerate(tiles):
                sheet.paste(tile, (x + ti * size, y + LABEL_H))
    return sheet
