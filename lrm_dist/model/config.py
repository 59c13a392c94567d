"""LRM model settings (which architecture/checkpoint to build or load)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """Which LRM to build: a named size (tiny/small/base/large) or a pretrained folder/hub id."""

    model_config = ConfigDict(extra="forbid")

    size: str = Field("tiny", pattern="^(tiny|small|base|large)$")
    pretrained: str | None = Field(None, description="HF-layout folder or hub id to start from.")
