"""Fixtures of the training tests: SYNTHETIC shards (lrm_dist.train.synthetic) and small sample recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrm_dist.train.config import SampleConfig
from lrm_dist.train.synthetic import write_synthetic_shards


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> list[Path]:
    """3 shard tars x 4 synthetic assets (6 views of 32 px) written by lrm_dist.shards' writer."""
    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), n_shards=3, per_shard=4)


@pytest.fixture
def small_recipe() -> SampleConfig:
    return SampleConfig(supervision_views=3, render_res_low=24, render_res_high=32, patch_size=16)
