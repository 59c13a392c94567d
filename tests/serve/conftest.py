"""A saved tiny LRM, a density threshold at which it has a surface, and test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.model.pretrained import save_pretrained
from lrm_dist.reconstruct.extract import density_grid
from lrm_dist.serve.infer import source_camera_features


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(LRM(SIZES["tiny"]), tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def surface_threshold(tiny_model_dir: Path) -> float:
    """The median density of the tiny model's field on a white image: an iso-level with a surface."""
    from lrm_dist.model.pretrained import from_pretrained

    model = from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        planes = model.forward_planes(torch.ones(1, 3, 56, 56), source_camera_features(2.0, 0.75))
        grid = density_grid(model.synthesizer, planes[0], 24)
    return float(grid.median())


def rgba_image(path: Path, size: tuple[int, int] = (80, 64), box: tuple[int, int, int, int] = (20, 10, 50, 40)) -> Path:
    """An RGBA PNG: transparent, with an opaque red rectangle at box = (x0, y0, x1, y1)."""
    arr = np.zeros((size[1], size[0], 4), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = (200, 30, 30, 255)
    Image.fromarray(arr, "RGBA").save(path)
    return path
