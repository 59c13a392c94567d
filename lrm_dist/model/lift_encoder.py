"""The image lift's 2D encoders: source image [N, 3, S, S] -> pixel features [N, W, S/2, S/2].

``conv``: four convolutions (one stride 2, dilations up to 4): each feature sees about a quarter of
the image, so a cell lifted from it knows its pixel's neighbourhood but not which part of which
object that pixel is, nor how deep the object goes there.

``unet``: a 2D U-Net (five scales, S/2 down to S/32, skip connections back up to S/2): every output
feature sees the whole image, the same per-pixel resolution. Pixel-aligned reconstruction (PIFu,
pixelNeRF) relies on such global-context features; measured against ``conv`` in docs/train.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LIFT_ENCODERS = ("conv", "unet")


def conv_encoder(width: int) -> nn.Sequential:
    """The first lift's encoder (keys ``0, 2, 4, 6``), kept so models trained with it still load."""
    return nn.Sequential(
        nn.Conv2d(3, width // 2, 3, stride=2, padding=1), nn.GELU(),
        nn.Conv2d(width // 2, width, 3, padding=1), nn.GELU(),
        nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.GELU(),
        nn.Conv2d(width, width, 3, padding=4, dilation=4),
    )


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(_groups(c_out), c_out), nn.GELU())


class UNetEncoder(nn.Module):
    """Five scales down (S/2 ... S/32, two 3x3 blocks each), then up with skips to S/2 (any input size).

    ``base`` channels at S/2, doubling per scale up to 4x (None: ``width``); a 1x1 convolution maps them to the
    ``width`` output features, so a wider U-Net leaves the rest of the lift as it is.
    """

    def __init__(self, width: int, scales: int = 5, base: int | None = None):
        super().__init__()
        base = width if base is None else base
        channels = [min(base * 2**i, 4 * base) for i in range(scales)]
        self.down = nn.ModuleList()
        c_prev = 3
        for c in channels:
            self.down.append(nn.Sequential(_block(c_prev, c, stride=2), _block(c, c)))
            c_prev = c
        self.up = nn.ModuleList(_block(channels[i + 1] + channels[i], channels[i]) for i in reversed(range(scales - 1)))
        self.out = nn.Conv2d(channels[0], width, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        x = image
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return self.out(x)


def lift_encoder(kind: str, width: int, base: int | None = None) -> nn.Module:
    """The lift's image encoder named ``kind`` (one of ``LIFT_ENCODERS``), ``width`` output channels at S/2;
    ``base``: the U-Net's own channels at S/2 (None: ``width``; the conv encoder has no such setting)."""
    if kind == "conv":
        if base is not None:
            raise ValueError("the conv lift encoder has no separate width: lift_encoder_width needs the unet encoder")
        return conv_encoder(width)
    if kind == "unet":
        return UNetEncoder(width, base=base)
    raise ValueError(f"unknown lift encoder {kind!r}: expected one of {', '.join(LIFT_ENCODERS)}")
