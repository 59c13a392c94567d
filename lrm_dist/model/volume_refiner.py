"""Volume refiner: a small 3D U-Net over the image lift's feature volume (an lrm-dist option).

The lift (``model/lift.py``) computes each cell of its volume alone, from the pixel it projects to and
its depth along that pixel's ray. What a single view leaves open, how deep each part goes, depends on
the cell's neighbourhood in 3D (a seat's thickness, a leg behind a leg). Three scales of 3x3x3
convolutions (G, G/2, G/4 cells a side) let every cell see about half the box. The refiner adds its
output to the volume, and its last layer starts at zero, so a fresh model starts exactly where the
plain lift does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(_groups(c_out), c_out), nn.GELU())


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class VolumeRefiner(nn.Module):
    """Feature volume [N, C, G, G, G] -> the same shape, refined (G a multiple of 4)."""

    def __init__(self, channels: int, width: int | None = None):
        super().__init__()
        w = width or max(channels, 16)
        self.enc0 = _block(channels, w)
        self.enc1 = nn.Sequential(_block(w, 2 * w, stride=2), _block(2 * w, 2 * w))
        self.enc2 = nn.Sequential(_block(2 * w, 4 * w, stride=2), _block(4 * w, 4 * w))
        self.dec1 = _block(4 * w + 2 * w, 2 * w)
        self.dec0 = _block(2 * w + w, w)
        self.out = nn.Conv3d(w, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        if any(s % 4 for s in volume.shape[2:]):
            raise ValueError(f"volume refiner needs a side that is a multiple of 4, got {tuple(volume.shape[2:])}")
        x0 = self.enc0(volume)
        x1 = self.enc1(x0)
        x2 = self.enc2(x1)
        up1 = F.interpolate(x2, scale_factor=2, mode="trilinear", align_corners=False)
        y1 = self.dec1(torch.cat([up1, x1], 1))
        up0 = F.interpolate(y1, scale_factor=2, mode="trilinear", align_corners=False)
        y0 = self.dec0(torch.cat([up0, x0], 1))
        return volume + self.out(y0)
