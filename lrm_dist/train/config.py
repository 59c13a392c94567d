"""Training settings (Ray Train workers, DeepSpeed, optimisation, data sampling)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Ray Train + DeepSpeed fine-tuning settings."""

    model_config = ConfigDict(extra="forbid")

    num_workers: int = Field(1, ge=1)
    max_steps: int = Field(10, ge=1)
