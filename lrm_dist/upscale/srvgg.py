"""SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3), with the official module names.

A plain VGG-style stack (conv + activation) ending in a pixel shuffle; the nearest-upsampled input is
added as a residual, so the network only learns the high-frequency detail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRVGGNetCompact(nn.Module):
    """``body`` = conv, act, ``num_conv`` x (conv, act), conv to ``num_out_ch * upscale**2``; then pixel shuffle."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"SRVGGNetCompact act_type must be prelu, relu or leakyrelu, got {act_type!r}")
        self.scale = upscale
        self.num_out_ch = num_out_ch
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), self._act(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), self._act(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    @staticmethod
    def _act(act_type: str, num_feat: int) -> nn.Module:
        if act_type == "prelu":
            return nn.PReLU(num_parameters=num_feat)
        if act_type == "relu":
            return nn.ReLU(inplace=True)
        return nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        base = F.interpolate(x[:, : self.num_out_ch], scale_factor=self.scale, mode="nearest")
        return out + base
