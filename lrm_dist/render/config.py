"""Render stage settings (Blender scene, cameras, lighting, Ray fan-out).

Only the fields under ``cameras``, ``lighting`` and the image settings change what is rendered; they
make the settings hash (``lrm_dist.render.settings.settings_hash``). ``actors``, ``timeout_s`` and
``retries`` only change how the work is spread and are left out of it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _check_range(name: str, lo: float, hi: float) -> None:
    if lo > hi:
        raise ValueError(f"{name} = [{lo}, {hi}]: the low end is above the high end")


class CameraConfig(BaseModel):
    """Orbit cameras: view 0 frontal (azimuth 0, elevation 0: at (0, -d, 0)), the rest seeded over the sphere."""

    model_config = ConfigDict(extra="forbid")

    elevation_deg: tuple[float, float] = Field((-15.0, 45.0), description="Elevation range of views 1..V-1 (degrees).")
    azimuth_deg: tuple[float, float] = Field(
        (0.0, 360.0), description="Azimuth range of views 1..V-1; views are stratified over it, then jittered."
    )
    distance: tuple[float, float] = Field(
        (2.4, 2.8), description="Camera distance from the origin (canonical units); view 0 takes the midpoint."
    )
    fov_deg: tuple[float, float] = Field(
        (45.0, 50.0), description="Horizontal field of view (degrees); view 0 takes the midpoint."
    )
    seed: int = Field(0, description="Mixed with the asset id, so every asset has its own reproducible cameras.")

    @model_validator(mode="after")
    def _ranges(self) -> "CameraConfig":
        _check_range("render.cameras.elevation_deg", *self.elevation_deg)
        _check_range("render.cameras.azimuth_deg", *self.azimuth_deg)
        _check_range("render.cameras.distance", *self.distance)
        _check_range("render.cameras.fov_deg", *self.fov_deg)
        if not -90.0 <= self.elevation_deg[0] <= self.elevation_deg[1] <= 90.0:
            raise ValueError(f"render.cameras.elevation_deg = {list(self.elevation_deg)}: must lie in [-90, 90]")
        if self.distance[0] <= 0 or not 1.0 <= self.fov_deg[0] <= self.fov_deg[1] <= 170.0:
            raise ValueError("render.cameras: distance must be > 0 and fov_deg within [1, 170]")
        return self


class LightingConfig(BaseModel):
    """Per-asset random lighting: one preset drawn by weight, its parameters drawn from the ranges."""

    model_config = ConfigDict(extra="forbid")

    presets: dict[Literal["area_rig", "sun", "hdri"], float] = Field(
        default_factory=lambda: {"area_rig": 0.5, "sun": 0.2, "hdri": 0.3},
        description="Preset weights; 'hdri' falls back to 'area_rig' when no studio HDRI is available.",
    )
    area_lights: tuple[int, int] = Field((2, 4), description="Area lights in a rig (inclusive range).")
    # Calibrated on procedural furniture (Standard view transform, 96 px, 16 samples): no clipped
    # foreground pixels and mean foreground 0.42-0.61 for albedos up to 0.75; 150-600 W clipped 80%
    # of a white sofa.
    area_energy_w: tuple[float, float] = Field((25.0, 100.0), description="Power of each area light (W).")
    sun_strength: tuple[float, float] = Field((1.0, 3.0), description="Sun strength (W/m^2).")
    temperature_k: tuple[float, float] = Field((4000.0, 8000.0), description="Light colour temperature (K).")
    ambient: tuple[float, float] = Field((0.05, 0.2), description="Uniform world (ambient) strength with lamp presets.")
    hdri_strength: tuple[float, float] = Field((0.7, 1.5), description="World strength of an HDRI.")
    hdri_dir: str | None = Field(
        None, description="Folder of .exr/.hdr environment maps; None: Blender's bundled studio lights, when present."
    )
    seed: int = 0

    @model_validator(mode="after")
    def _ranges(self) -> "LightingConfig":
        for name in ("area_lights", "area_energy_w", "sun_strength", "temperature_k", "ambient", "hdri_strength"):
            _check_range(f"render.lighting.{name}", *getattr(self, name))
        if not self.presets or min(self.presets.values()) < 0 or sum(self.presets.values()) <= 0:
            raise ValueError(f"render.lighting.presets = {self.presets}: need non-negative weights with a positive sum")
        return self


class ActorConfig(BaseModel):
    """The Ray render actors: how many, what each holds, when each is replaced."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(0, ge=0, description="Render actors; 0: as many as the cluster's CPUs (or GPUs) fit.")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per actor; also Blender's thread count (rounded, >= 1).")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor (fractions share a GPU).")
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources per actor.")
    recycle_after: int = Field(50, ge=1, description="Replace an actor after this many assets (bounds memory growth).")
    start_timeout_s: float = Field(
        600.0, gt=0, description="Fail the job when no actor has come up for this long (no capacity, broken image)."
    )


class RenderConfig(BaseModel):
    """How each asset is rendered and how the renders fan out over Ray."""

    model_config = ConfigDict(extra="forbid")

    views: int = Field(32, ge=1, description="Views per asset; view 0 is frontal.")
    resolution: int = Field(256, ge=16, le=4096, description="Square render resolution (pixels).")
    engine: str = Field("CYCLES", pattern="^(CYCLES|BLENDER_EEVEE|BLENDER_WORKBENCH)$")
    samples: int = Field(32, ge=1, description="Samples per pixel (Cycles, EEVEE).")
    denoise: bool = Field(False, description="Cycles OIDN/OptiX denoiser (~1.3 CPU-s per view at 256 px).")
    cycles_device: Literal["auto", "CPU", "CUDA", "OPTIX"] = Field(
        "auto", description="Cycles compute backend (not a torch device); 'auto' picks OptiX, then CUDA, when the "
        "actor sees a GPU, else CPU."
    )
    depth_scale: float = Field(1e-4, gt=0, description="Metres per uint16 depth step in the shard (max 6.5535 m).")
    occupancy_resolution: int = Field(
        96, ge=0, le=256,
        description="Side of the ground-truth occupancy grid stored with each sample (training's 3D supervision); 0: none.",
    )
    cameras: CameraConfig = Field(default_factory=CameraConfig)
    lighting: LightingConfig = Field(default_factory=LightingConfig)
    timeout_s: float = Field(600.0, gt=0, description="Per-asset render timeout; a hung actor is killed and replaced.")
    retries: int = Field(2, ge=0, description="Retries of an asset after a crash or timeout before it is 'failed'.")
    actors: ActorConfig = Field(default_factory=ActorConfig)
    limit: int | None = Field(None, ge=1, description="Render at most this many pending assets (smoke runs).")
