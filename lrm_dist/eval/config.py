"""Evaluation settings (metrics sampling, mesh extraction, report)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    """Occupancy-Networks-style metrics on held-out assets."""

    model_config = ConfigDict(extra="forbid")

    n_points: int = Field(100_000, ge=1000)
    fscore_thresholds: list[float] = Field(default_factory=lambda: [0.01, 0.02, 0.05])
