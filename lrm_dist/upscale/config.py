"""Upscale stage settings (Real-ESRGAN model, tiling, batching, actors)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UpscaleConfig(BaseModel):
    """Real-ESRGAN between the renderer and the shard writer; off by default on CPU."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    model: str = Field("realesr-animevideov3-x4", description="Weights name, or a path to .pth/.safetensors.")
