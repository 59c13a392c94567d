"""LRM model settings: which architecture/checkpoint to build or load, and the architecture itself.

``LRMConfig`` holds exactly the keys of OpenLRM's Hugging Face ``config.json`` (plus an optional
``source_size``), so a released checkpoint's config loads unchanged. ``SIZES`` names the published
small/base/large architectures and the tiny ones used by tests and CPU runs. Every size has an upper
bound several times OpenLRM-large's, so a hostile or mistyped config.json is refused in one line before
anything is allocated.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


DEFAULT_ISO_LEVEL = 3.0
"""OpenLRM's density iso-level for marching cubes."""


class LRMConfig(BaseModel):
    """The architecture of one LRM; field names equal OpenLRM's ``config.json`` keys."""

    model_config = ConfigDict(extra="forbid")

    camera_embed_dim: int = Field(
        1024, ge=1, le=4096, description="Width of the camera-embedding MLP (modulation vector)."
    )
    rendering_samples_per_ray: int = Field(
        96, ge=4, le=1024, description="Coarse + importance samples per ray (half each)."
    )
    transformer_dim: int = Field(512, ge=8, le=4096)
    transformer_layers: int = Field(12, ge=1, le=64)
    transformer_heads: int = Field(8, ge=1, le=64)
    triplane_low_res: int = Field(
        32, ge=2, le=128, description="Token grid side of each plane (before the 2x upsampler)."
    )
    triplane_high_res: int = Field(
        64, ge=4, le=256, description="Plane side after the upsampler (= 2 * triplane_low_res)."
    )
    triplane_dim: int = Field(32, ge=1, le=512, description="Feature channels per plane.")
    encoder_type: str = Field("dinov2", pattern="^dinov2$")
    encoder_model_name: str = Field("dinov2_vits14_reg", description="A name from lrm_dist.model.encoder.ENCODER_ARCHS.")
    encoder_feat_dim: int = Field(384, ge=1, le=4096)
    encoder_freeze: bool = False
    source_size: int | None = Field(
        None, ge=14, le=1024, description="Input image side in pixels (multiple of 14); None: the size's default."
    )
    # lrm-dist additions; their defaults are OpenLRM's architecture, so released configs load unchanged.
    image_lift: bool = Field(False, description="Add pixel-aligned image features to the triplanes (model/lift.py).")
    lift_refine: bool = Field(False, description="Refine the lift's volume with a 3D U-Net (model/volume_refiner.py).")
    lift_encoder: str = Field(
        "conv", pattern="^(conv|unet)$", description="The lift's image encoder (model/lift_encoder.py): conv or unet."
    )
    lift_encoder_width: int | None = Field(
        None, ge=8, le=512, description="The lift's U-Net channels at its finest scale (doubling per scale up to 4x); "
        "None: the lift's feature width, 64. Its 1x1 output keeps the lift's features 64 wide.",
    )
    lift_resolution: int | None = Field(
        None, ge=4, le=256, description="Cells per axis of the lift's feature volume over [-1, 1]^3; None: "
        "triplane_high_res. Finer than the planes gives thin parts more cells (memory and time grow as its cube).",
    )
    lift_interval: bool = Field(
        False, description="Give the field decoder each point's own test against the lift's depth layers, at the "
        "point's exact projection into the source view (model/lift.py, ``interval_features``)."
    )
    source_frame: str = Field(
        "camera", pattern="^(camera|upright)$",
        description="The model frame training used (geometry.cameras.FRAMES); eval canonicalises its input views the same way.",
    )
    canonical_distance: float | None = Field(
        None, gt=0, le=100, description="The distance training rescaled every source camera to "
        "(train.sample.source_distance); None: distances kept as rendered. Eval prepares its inputs the same way.",
    )
    iso_level: float | None = Field(
        None, gt=0, description="Density iso-level of the surface, calibrated after training; None: OpenLRM's 3.0."
    )
    # The source views training saw (train/calibrate.py); serving frames a user's image the same way.
    source_distance: float | None = Field(
        None, gt=0, le=100, description="Mean source-camera distance in training; None: OpenLRM's 2.0."
    )
    source_focal: float | None = Field(
        None, gt=0, le=100, description="Mean source focal length / image side in training; None: OpenLRM's 0.75."
    )
    source_foreground_ratio: float | None = Field(
        None, gt=0, le=1, description="Mean share of the source frame the object filled in training; None: serve's default."
    )

    @model_validator(mode="after")
    def _lift_options_need_lift(self) -> LRMConfig:
        if self.lift_refine and not self.image_lift:
            raise ValueError("lift_refine refines the image lift's volume: it needs image_lift")
        if self.lift_encoder_width is not None and (not self.image_lift or self.lift_encoder != "unet"):
            raise ValueError("lift_encoder_width widens the image lift's U-Net: it needs image_lift and lift_encoder unet")
        if self.lift_interval and not self.image_lift:
            raise ValueError("lift_interval reads the image lift's depth layers: it needs image_lift")
        if self.lift_resolution is not None and not self.image_lift:
            raise ValueError("lift_resolution sizes the image lift's volume: it needs image_lift")
        if self.lift_refine and self.resolved_lift_resolution() % 4:
            raise ValueError(f"the lift's refiner halves its volume twice: lift_resolution "
                             f"{self.resolved_lift_resolution()} must be a multiple of 4")
        return self

    def resolved_lift_resolution(self) -> int:
        """Cells per axis of the lift's volume: ``lift_resolution``, else the planes' side."""
        return self.triplane_high_res if self.lift_resolution is None else self.lift_resolution

    def resolved_source_size(self) -> int:
        """Input side for the encoder: ``source_size``, else OpenLRM's 224/336/448 by model size."""
        if self.source_size is not None:
            return self.source_size
        if "vits14" in self.encoder_model_name:
            return 224
        if "vitb14" in self.encoder_model_name:
            return 336 if self.transformer_dim <= 768 else 448
        return 56

    def hf_dict(self) -> dict:
        """The ``config.json`` payload (lrm-dist's additions only when they differ from OpenLRM)."""
        out = self.model_dump(exclude_none=True)
        for key in ("image_lift", "lift_refine", "lift_interval"):
            if not out[key]:
                out.pop(key)
        if not self.image_lift or self.lift_encoder == "conv":
            out.pop("lift_encoder")
        if self.source_frame == "camera":
            out.pop("source_frame")
        return out

    def surface_level(self) -> float:
        """The density iso-level to mesh at: the calibrated ``iso_level``, else OpenLRM's 3.0."""
        return DEFAULT_ISO_LEVEL if self.iso_level is None else self.iso_level


def validate_lrm_config(fields: dict[str, Any], origin: str) -> LRMConfig:
    """``LRMConfig`` from ``fields``; a refusal is one line naming ``origin``, each bad field, its value and limit."""
    try:
        return LRMConfig.model_validate(fields)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'} = {e.get('input')!r}: {e['msg']}" for e in exc.errors()
        ]
        raise ValueError(f"{origin}: {'; '.join(problems)}") from None


SIZES: dict[str, LRMConfig] = {
    # OpenLRM v1.1 releases: openlrm-obj-small-1.1, openlrm-mix-base-1.1, openlrm-mix-large-1.1.
    "small": LRMConfig(),
    "base": LRMConfig(
        transformer_dim=768, transformer_heads=12, triplane_dim=48,
        encoder_model_name="dinov2_vitb14_reg", encoder_feat_dim=768,
    ),
    "large": LRMConfig(
        rendering_samples_per_ray=128, transformer_dim=1024, transformer_layers=16, transformer_heads=16,
        triplane_dim=80, encoder_model_name="dinov2_vitb14_reg", encoder_feat_dim=768,
    ),
    # Tests and CPU smoke runs: a 2-block 32-wide ViT, 56 px input (4x4 patches), 8x8 -> 16x16 planes.
    "tiny": LRMConfig(
        camera_embed_dim=32, rendering_samples_per_ray=16, transformer_dim=48, transformer_layers=2,
        transformer_heads=4, triplane_low_res=8, triplane_high_res=16, triplane_dim=8,
        encoder_model_name="dinov2_tiny14_reg", encoder_feat_dim=32, source_size=56,
    ),
}


class ModelConfig(BaseModel):
    """Which LRM to build: a named size (tiny/small/base/large) or a pretrained folder/hub id."""

    model_config = ConfigDict(extra="forbid")

    size: str = Field("tiny", pattern="^(tiny|small|base|large)$")
    pretrained: str | None = Field(None, description="HF-layout folder or hub id to start from.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of a hub id.")
    image_lift: bool = Field(
        True, description="Fresh models: add the image lift (model/lift.py; measured in docs/train.md). "
        "A pretrained checkpoint keeps its own config."
    )
    lift_refine: bool = Field(
        True, description="Fresh models with the lift: refine its volume with a 3D U-Net (model/volume_refiner.py; "
        "measured in docs/train.md)."
    )
    lift_encoder: str | None = Field(
        None, pattern="^(conv|unet)$",
        description="Fresh models with the lift: its image encoder (model/lift_encoder.py); None: unet for small and "
        "larger, conv for tiny (the U-Net's 6 M parameters would be 20 times tiny's; both measured in docs/train.md).",
    )
    architecture: dict[str, Any] = Field(
        default_factory=dict, description="Fresh models: LRMConfig fields overriding the size's, e.g. triplane_low_res."
    )

    @model_validator(mode="after")
    def _architecture_is_valid(self) -> ModelConfig:
        """Refuse bad ``architecture`` overrides when the config loads, not later inside a worker."""
        if self.architecture:
            self.arch()
        return self

    def arch(self) -> LRMConfig:
        """The architecture of a fresh model: ``size`` with ``image_lift`` and ``architecture`` applied
        (a pretrained checkpoint's own config.json wins when loading)."""
        encoder = self.lift_encoder or ("conv" if self.size == "tiny" else "unet")
        fields = {**SIZES[self.size].model_dump(), "image_lift": self.image_lift,
                  "lift_refine": self.image_lift and self.lift_refine, "lift_encoder": encoder, **self.architecture}
        return validate_lrm_config(fields, "model.architecture")
