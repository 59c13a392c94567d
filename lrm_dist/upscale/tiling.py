"""Tiled, batched network application with Real-ESRGAN's semantics (tile, tile_pad, pre_pad, mod padding).

Each tile of ``tile`` x ``tile`` input pixels is run with ``tile_pad`` extra pixels of context on every side
(clamped at the image border). ``blend="crop"`` keeps only each tile's core (Real-ESRGAN's way: seams
show where ``tile_pad`` is smaller than the receptive field); ``blend="linear"`` cross-fades neighbouring
tiles over the middle ``tile_pad`` of their overlap, so no seam remains. Tiles of equal padded shape (from all
images) share a forward.
``pre_pad`` reflect-pads right/bottom before the network; x2 (x1) networks also get the image padded to
a multiple of 2 (4). Everything padded is cropped from the output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Tile:
    """A tile's core box ``[y0, y1) x [x0, x1)`` and its padded box, in input pixels."""

    y0: int
    y1: int
    x0: int
    x1: int
    py0: int
    py1: int
    px0: int
    px1: int

    @property
    def padded_shape(self) -> tuple[int, int]:
        return self.py1 - self.py0, self.px1 - self.px0


def tile_grid(height: int, width: int, tile: int, tile_pad: int) -> list[Tile]:
    """Real-ESRGAN's grid: ceil(H/tile) x ceil(W/tile) cores, each padded by ``tile_pad`` inside the image."""
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            tiles.append(
                Tile(y0, y1, x0, x1, max(y0 - tile_pad, 0), min(y1 + tile_pad, height),
                     max(x0 - tile_pad, 0), min(x1 + tile_pad, width))
            )
    return tiles


def _pad_right_bottom(x: torch.Tensor, pad_h: int, pad_w: int, what: str) -> torch.Tensor:
    if pad_h == 0 and pad_w == 0:
        return x
    if pad_h >= x.shape[-2] or pad_w >= x.shape[-1]:
        raise ValueError(f"{what} ({pad_h}, {pad_w}) must be smaller than the image ({x.shape[-2]}x{x.shape[-1]})")
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")


def _in_batches(forward: Forward, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)], 0)


def apply_tiled(
    forward: Forward,
    x: torch.Tensor,
    scale: int,
    tile: int = 0,
    tile_pad: int = 10,
    pre_pad: int = 0,
    batch_size: int = 16,
    blend: str = "linear",
) -> torch.Tensor:
    """Apply an x``scale`` network to ``x`` (B, C, H, W) -> (B, C', H*scale, W*scale), tiling when ``tile`` > 0."""
    if blend not in ("crop", "linear"):
        raise ValueError(f"blend must be 'crop' or 'linear', got {blend!r}")
    height, width = x.shape[-2:]
    x = _pad_right_bottom(x, pre_pad, pre_pad, "pre_pad")
    mod = {1: 4, 2: 2}.get(scale, 1)
    x = _pad_right_bottom(x, -x.shape[-2] % mod, -x.shape[-1] % mod, "mod padding")
    if tile <= 0 or (tile >= x.shape[-2] and tile >= x.shape[-1]):
        out = _in_batches(forward, x, batch_size)
    else:
        tiles = tile_grid(x.shape[-2], x.shape[-1], tile, tile_pad)
        if blend == "crop" or tile_pad == 0:
            out = _apply_tiles(forward, x, scale, tiles, batch_size)
        else:
            out = _blend_tiles(forward, x, scale, tiles, tile_pad, batch_size)
    return out[..., : height * scale, : width * scale]


def _batched_tiles(forward: Forward, x: torch.Tensor, tiles: list[Tile], batch_size: int):
    """Yield ``(image index, tile, network output)`` with tiles of equal padded shape batched together."""
    groups: dict[tuple[int, int], list[tuple[int, Tile]]] = defaultdict(list)
    for b in range(x.shape[0]):
        for t in tiles:
            groups[t.padded_shape].append((b, t))
    for shape in sorted(groups):  # a fixed order keeps runs reproducible
        members = groups[shape]
        for i in range(0, len(members), batch_size):
            chunk = members[i : i + batch_size]
            result = forward(torch.stack([x[b, :, t.py0 : t.py1, t.px0 : t.px1] for b, t in chunk]))
            for j, (b, t) in enumerate(chunk):
                yield b, t, result[j]


def _apply_tiles(forward: Forward, x: torch.Tensor, scale: int, tiles: list[Tile], batch_size: int) -> torch.Tensor:
    s, out = scale, None
    for b, t, result in _batched_tiles(forward, x, tiles, batch_size):
        if out is None:
            out = result.new_empty(x.shape[0], result.shape[0], x.shape[-2] * s, x.shape[-1] * s)
        oy, ox = (t.y0 - t.py0) * s, (t.x0 - t.px0) * s
        out[b, :, t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s] = result[
            :, oy : oy + (t.y1 - t.y0) * s, ox : ox + (t.x1 - t.x0) * s
        ]
    return out


def _ramp(start: int, stop: int, size: int, pad: int, scale: int, device: torch.device) -> torch.Tensor:
    """Weights along one axis of a padded tile: 0 over the outer pad/2 of an inner edge (the outputs that saw
    the tile's zero padding most), rising to 1 over the next ``pad``; flat at image borders. Two neighbours'
    ramps sum to 1 across their 2*pad overlap."""
    centres = (torch.arange((stop - start) * scale, device=device, dtype=torch.float32) + 0.5) / scale
    weight = torch.ones_like(centres)
    if start > 0:
        weight = torch.minimum(weight, (centres - pad / 2) / pad)
    if stop < size:
        weight = torch.minimum(weight, (stop - start - centres - pad / 2) / pad)
    return weight.clamp_min_(1e-6)


def _blend_tiles(
    forward: Forward, x: torch.Tensor, scale: int, tiles: list[Tile], pad: int, batch_size: int
) -> torch.Tensor:
    s, (height, width) = scale, x.shape[-2:]
    out = weight_sum = None
    for b, t, result in _batched_tiles(forward, x, tiles, batch_size):
        if out is None:
            out = torch.zeros(x.shape[0], result.shape[0], height * s, width * s, device=x.device)
            weight_sum = torch.zeros(1, 1, height * s, width * s, device=x.device)
        w = _ramp(t.py0, t.py1, height, pad, s, x.device)[:, None] * _ramp(t.px0, t.px1, width, pad, s, x.device)
        region = (slice(t.py0 * s, t.py1 * s), slice(t.px0 * s, t.px1 * s))
        out[b, :, region[0], region[1]] += result.float() * w
        if b == 0:
            weight_sum[0, 0, region[0], region[1]] += w
    return out / weight_sum
