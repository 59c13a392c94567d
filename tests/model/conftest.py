"""Tiny LRMs and cameras shared by the model tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrm_dist.geometry.cameras import camera_features, intrinsics_from_fov, look_at_c2w, orbit_position
from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM


@pytest.fixture
def tiny() -> LRM:
    torch.manual_seed(0)
    return LRM(SIZES["tiny"]).eval()


def source_camera(batch: int = 1) -> torch.Tensor:
    """16 features of the canonical frontal source camera (OpenLRM's default: distance 2, f = 0.75)."""
    feats = camera_features(look_at_c2w(orbit_position(2.0, 0.0, 0.0)), np.array([0.75, 0.75, 0.5, 0.5, 1.0, 1.0]))
    return torch.tensor(feats, dtype=torch.float32).expand(batch, 16).clone()


def render_cameras(batch: int, azimuths: list[float], fov: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(c2w [N, V, 4, 4], normalised intrinsics [N, V, 4]) of cameras orbiting at distance 2.2."""
    c2w = np.stack([look_at_c2w(orbit_position(2.2, a, 15.0)) for a in azimuths])
    k = intrinsics_from_fov(fov, 1, 1)[:4]
    c2w_t = torch.tensor(c2w, dtype=torch.float32).expand(batch, -1, -1, -1).clone()
    k_t = torch.tensor(k, dtype=torch.float32).expand(batch, len(azimuths), 4).clone()
    return c2w_t, k_t
