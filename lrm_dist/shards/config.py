"""Shard writer settings (WebDataset tars and the render manifest)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ShardsConfig(BaseModel):
    """Shard size (a shard is closed when either limit is reached), the held-out split, and how the view
    members are encoded (docs/render.md, "Leaner shards")."""

    model_config = ConfigDict(extra="forbid")

    max_samples: int = Field(64, ge=1, description="Assets per shard at most.")
    max_bytes: int = Field(512 * 2**20, ge=2**16, description="Bytes per shard at most (approximate).")
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1,
        description="Share of assets held out of training for evaluation, by a stable hash of the asset id "
        "(lrm_dist/shards/split.py); 0: no split, eval scores the training assets.",
    )
    image_format: Literal["png", "webp"] = Field(
        "png",
        description="Encoding of the 8-bit view members (rgba, normal): png, or webp (lossless unless "
        "shards.webp_quality; rgba 1.7x smaller than PNG on 128 px Cycles renders, docs/render.md).",
    )
    webp_quality: int | None = Field(
        None, ge=1, le=100,
        description="rgba only, with image_format webp: lossy WebP at this quality (alpha stays lossless; "
        "95: the rgba 3.8x smaller than PNG, 41 dB; docs/render.md); None: lossless. Normal maps are always lossless.",
    )
    normal_maps: bool = Field(
        True, description="Write each view's normal map (train.loss.normal's target); false: about 16% smaller shards.",
    )

    @model_validator(mode="after")
    def _quality_needs_webp(self) -> "ShardsConfig":
        if self.webp_quality is not None and self.image_format != "webp":
            raise ValueError(f"shards.webp_quality={self.webp_quality} needs shards.image_format: webp "
                             f"(it is {self.image_format!r})")
        return self
