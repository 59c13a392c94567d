"""Render stage settings (Blender scene, cameras, lighting, Ray fan-out)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RenderConfig(BaseModel):
    """How each asset is rendered and how the renders fan out over Ray."""

    model_config = ConfigDict(extra="forbid")

    views: int = Field(32, ge=1, description="Views per asset; view 0 is frontal.")
    resolution: int = Field(256, ge=16, le=4096)
    engine: str = Field("CYCLES", pattern="^(CYCLES|BLENDER_EEVEE|BLENDER_WORKBENCH)$")
    samples: int = Field(32, ge=1)
