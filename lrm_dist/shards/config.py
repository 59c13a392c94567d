"""Shard writer settings (WebDataset tars and the render manifest)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ShardsConfig(BaseModel):
    """Target shard size; shards are closed when either limit is reached."""

    model_config = ConfigDict(extra="forbid")

    max_samples: int = Field(64, ge=1, description="Assets per shard at most.")
    max_bytes: int = Field(512 * 2**20, ge=2**16, description="Bytes per shard at most (approximate).")
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1,
        description="Share of assets held out of training for evaluation, by a stable hash of the asset id "
        "(lrm_dist/shards/split.py); 0: no split, eval scores the training assets.",
    )
