"""Camera embedder: the 16 source-camera numbers -> the modulation vector of every transformer block."""

from __future__ import annotations

import torch
from torch import nn

SOURCE_CAMERA_DIM = 16
"""3x4 camera-to-world flattened + (fx/W, fy/H, cx/W, cy/H): ``geometry.cameras.camera_features``."""


class CameraEmbedder(nn.Module):
    """MLP 16 -> D -> D with SiLU between (keys ``mlp.0``, ``mlp.2`` as in OpenLRM)."""

    def __init__(self, embed_dim: int, raw_dim: int = SOURCE_CAMERA_DIM):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(raw_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, camera: torch.Tensor) -> torch.Tensor:
        """[N, 16] -> [N, D]."""
        if camera.ndim != 2 or camera.shape[-1] != self.mlp[0].in_features:
            raise ValueError(
                f"source camera features must be [N, {self.mlp[0].in_features}], got {tuple(camera.shape)}"
            )
        return self.mlp(camera)
