"""Evaluation settings: which checkpoint and held-out assets, metric sampling, mesh extraction, Ray, report.

Fields marked "hashed" change the numbers and make the evaluation hash (with the checkpoint's
bytes): an asset already evaluated under the same hash is not evaluated again. The rest only change
how the work is spread or presented.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lrm_dist.device import PRECISION_HELP, Precision


class InferenceActorsConfig(BaseModel):
    """The Ray Data actor pool that runs the model (GPU actors, or CPU actors when ``num_gpus`` is 0)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, description="Inference actors (each holds one model).")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor; 0: CPU inference.")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per actor.")
    batch_size: int = Field(4, ge=1, description="Assets per triplane forward pass.")
    precision: Precision = Field(
        "auto", description=f"{PRECISION_HELP} (bf16/fp16: autocast, fp32 weights; as serve.precision)."
    )


class ReportConfig(BaseModel):
    """The report folder (``<workdir>/eval/report``): tables, plots, contact sheet, 3D page."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Write the report after the metrics.")
    models_per_category: int = Field(
        8, ge=1, description="Reconstructions per category on the 3D page (spread over the IoU range, best to worst)."
    )
    image_size: int = Field(192, ge=32, le=1024, description="Side of each contact-sheet image (pixels).")
    model_viewer_js: str | None = Field(
        None,
        description="Path of @google/model-viewer's dist/model-viewer-umd.min.js, copied into the report; None: "
        "$LRM_DIST_MODEL_VIEWER_JS, then node_modules/@google/model-viewer/ under the working or repo folder.",
    )


class EvalConfig(BaseModel):
    """Occupancy-Networks-style metrics of a checkpoint on held-out assets, as a Ray Data job."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(
        None, description="HF-layout model folder or hub id to evaluate; None: model.pretrained."
    )
    render_dir: str | None = Field(
        None, description="Render output folder of the held-out assets (render.parquet + shards/); None: <workdir>/render."
    )
    assets_manifest: str | None = Field(
        None, description="Asset manifest with the ground-truth mesh_path; None: <workdir>/assets/assets.parquet."
    )
    out_dir: str | None = Field(None, description="Where tables, meshes and the report go; None: <workdir>/eval.")
    categories: list[str] | None = Field(None, description="Evaluate only these categories (None: all).")
    split: Literal["held_out", "training", "all"] = Field(
        "held_out", description="Which assets to score: the held-out split (the measure of a model), the training "
        "split (with held_out, the generalisation gap), or all of them (renders of assets the model never trained on, "
        "e.g. another construction: eval.render_dir and eval.assets_manifest pointing at them)."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many assets of the split, taken in turn from each category (smoke runs).")
    input_view: int = Field(0, ge=0, description="Shard view fed to the model (0: the frontal view). Hashed.")
    n_points: int = Field(100_000, ge=1000, description="Uniform points for IoU and surface points per mesh. Hashed.")
    fscore_thresholds: list[float] = Field(
        default_factory=lambda: [0.01, 0.02, 0.05], description="F-score distance thresholds (unit cube). Hashed."
    )
    iou_padding: float = Field(0.1, ge=0, description="IoU points fill the unit cube grown by this per side. Hashed.")
    seed: int = Field(0, description="Seed of every point sample. Hashed.")
    mesh_resolution: int | None = Field(
        None, ge=16, le=1024, description="Density grid side for marching cubes; None: serve.mesh_resolution. Hashed."
    )
    mesher: str | None = Field(
        None, pattern="^(marching_cubes|surface_nets)$",
        description="Iso-surface extraction (as serve.mesher); None: serve.mesher, so eval scores what serving ships. Hashed.",
    )
    mesh_smoothing: int | None = Field(
        None, ge=0, le=100, description="Taubin smoothing passes over each mesh (as serve.mesh_smoothing); None: "
        "serve.mesh_smoothing. Hashed.",
    )
    density_threshold: float | None = Field(
        None, gt=0, description="Iso-level of the density; None: serve.density_threshold, else the model's calibrated "
        "iso_level (config.json), else 3.0. Hashed."
    )
    actors: InferenceActorsConfig = Field(default_factory=InferenceActorsConfig)
    metric_cpus: float = Field(1.0, gt=0, description="CPUs per metric task (one asset per task).")
    save_meshes: bool = Field(True, description="Keep each reconstruction as meshes/<asset_id>.glb (y-up, glTF).")
    flush_every: int = Field(32, ge=1, description="Persist finished rows every this many assets (resume granularity).")
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("fscore_thresholds")
    @classmethod
    def _positive_thresholds(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value):
            raise ValueError(f"fscore_thresholds must be a non-empty list of positive distances, got {value}")
        return sorted(value)

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        from lrm_dist.assets.categories import check_categories

        return None if value is None else check_categories(value)

