"""How a rendered RGBA view becomes a model input, the same in training and evaluation.

Straight-alpha RGBA composited over a background (white for the source view, as OpenLRM), then a
bicubic, antialiased, pixel-centre-aligned resize. ``train.sample`` builds its source and supervision
views with these, ``eval.reconstruct`` its input views: one definition, so the two cannot drift.
(Serving first recentres a user's photo, ``serve.preprocess``, which renders need not.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def composite(rgba: torch.Tensor, background: torch.Tensor | float) -> torch.Tensor:
    """Straight-alpha RGBA [..., 4, H, W] in [0, 1] over a background -> RGB [..., 3, H, W]."""
    rgb, alpha = rgba[..., :3, :, :], rgba[..., 3:4, :, :]
    return rgb * alpha + torch.as_tensor(background, dtype=rgba.dtype) * (1.0 - alpha)


def resize(images: torch.Tensor, side: int) -> torch.Tensor:
    """Bicubic, antialiased resize of [K, C, H, W] to side x side, clamped to [0, 1] (pixel-centre aligned)."""
    if images.shape[-2:] == (side, side):
        return images
    out = F.interpolate(images, size=(side, side), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)
