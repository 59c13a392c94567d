"""Inference and serving settings: preprocessing, mesh extraction, export, device, HTTP app."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lrm_dist.device import DEVICE_HELP, PRECISION_HELP, Device, Precision

MESH_FORMATS = ("glb", "ply", "obj")


class ServeConfig(BaseModel):
    """How an image becomes a mesh (``lrm-dist infer``) and how the Ray Serve app is deployed."""

    model_config = ConfigDict(extra="forbid")

    mesh_resolution: int = Field(256, ge=16, le=1024, description="Density grid side for marching cubes.")
    max_mesh_resolution: int | None = Field(
        None, ge=16, le=1024,
        description="Largest ?resolution= a served request may ask for (the grid costs R^3); None: serve.mesh_resolution.",
    )
    density_threshold: float | None = Field(
        None, gt=0,
        description="Iso-level of the activated density; None: the model's calibrated iso_level (config.json), else OpenLRM's 3.0.",
    )
    formats: list[str] = Field(default_factory=lambda: ["glb"], description="Any of glb, ply, obj.")
    mesher: str = Field(
        "marching_cubes", pattern="^(marching_cubes|surface_nets)$",
        description="marching_cubes: scikit-image on the CPU; surface_nets: ours, on the model's device (fast on GPU).",
    )
    mesh_smoothing: int = Field(
        0, ge=0, le=100,
        description="Taubin smoothing passes over the extracted mesh (0: none): takes out the grid's terracing "
        "without shrinking the shape (docs/model.md).",
    )
    grid_chunk: int | None = Field(
        None, ge=1024, description="Grid points per query pass; None: 2^21 on a GPU, 2^14 on a CPU (where small passes "
        "stay in cache: 2.8x faster at 128^3 on 2 cores).",
    )
    source_distance: float | None = Field(
        None, gt=0, description="Source camera distance; None: the model's own (config.json, from training), else OpenLRM's 2.0.",
    )
    source_focal: float | None = Field(
        None, gt=0, description="Source camera focal length / image side; None: the model's own, else OpenLRM's 0.75.",
    )
    foreground_ratio: float | None = Field(
        None, gt=0.1, le=1.0,
        description="Object bbox side / image side after recentring; None: the model's own (how its training views "
        "were framed), else 0.8.",
    )
    framing: Literal["recentre", "keep"] = Field(
        "recentre",
        description="recentre: crop to the object and scale it to foreground_ratio of the frame (photos, any framing); "
        "keep: use the image as it is framed, only composited on white and resized (renders framed like the training "
        "views: the object's offset and size in the frame are kept; docs/model.md).",
    )
    remove_background: str = Field(
        "auto", pattern="^(auto|always|never)$",
        description="auto: rembg for images without transparency; never: use the whole image as foreground.",
    )
    device: Device = Field("auto", description=f"Torch device of the model. {DEVICE_HELP}")
    precision: Precision = Field("auto", description=f"{PRECISION_HELP} (bf16/fp16: autocast, fp32 weights).")
    compile: bool = Field(False, description="torch.compile the triplane network and the grid query.")
    video: bool = Field(False, description="Also write a turntable video of the volume rendering.")
    video_format: str = Field("gif", pattern="^(gif|mp4)$", description="mp4 needs imageio[ffmpeg].")
    video_views: int = Field(48, ge=2)
    video_size: int = Field(256, ge=16)
    video_elevation: float = Field(20.0, ge=-89, le=89)
    http_host: str = Field("127.0.0.1", description="Address the Serve HTTP proxy binds.")
    http_port: int = Field(8000, ge=0, le=65535)
    max_request_mb: float = Field(32.0, gt=0, description="Largest request body the server reads; larger ones get 413.")
    num_replicas: int = Field(1, ge=1)
    gpus_per_replica: float = Field(0.0, ge=0)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if f not in MESH_FORMATS]
        if bad or not value:
            raise ValueError(f"formats must be a non-empty list of {', '.join(MESH_FORMATS)}; got {value}")
        return value

    @model_validator(mode="after")
    def _resolution_within_max(self) -> ServeConfig:
        if self.max_mesh_resolution is not None and self.mesh_resolution > self.max_mesh_resolution:
            raise ValueError(f"serve.mesh_resolution ({self.mesh_resolution}) is above serve.max_mesh_resolution "
                             f"({self.max_mesh_resolution})")
        return self

    @property
    def resolution_limit(self) -> int:
        """The largest mesh resolution a served request may ask for."""
        return self.max_mesh_resolution or self.mesh_resolution
