"""Training settings (Ray Train workers, DeepSpeed, optimisation, losses, data sampling).

Defaults follow OpenLRM's training recipe (AdamW lr 4e-4, wd 0.05, betas 0.9/0.95, clip 1.0, batch
16 per GPU, 1 source + 3 side views, 64 px patches of 192-288 px renders); tests and CPU smoke runs
override the sizes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lrm_dist.device import Device, TrainPrecision


class SampleConfig(BaseModel):
    """OpenLRM's per-asset sample recipe: one source view plus supervision views cropped to patches."""

    model_config = ConfigDict(extra="forbid")

    supervision_views: int = Field(4, ge=1, description="Rendered views per sample; the first is the source view.")
    render_res_low: int = Field(192, ge=8, description="Smallest side a supervision view is resized to (pixels).")
    render_res_high: int = Field(288, ge=8, description="Largest side a supervision view is resized to (pixels).")
    patch_size: int = Field(64, ge=4, description="Side of the rendered/supervised crop (pixels).")
    source_size: int | None = Field(None, ge=14, description="Encoder input side; None: the model's own.")
    frontal_source_fraction: float = Field(
        0.0, ge=0, le=1,
        description="Share of samples whose source view is view 0, the renderer's frontal view (the input eval feeds "
        "the model by default, eval.input_view); the rest draw it at random among all views (docs/train.md, round 21).",
    )
    backgrounds: list[float] = Field(
        default_factory=lambda: [0.0, 0.5, 1.0], description="Grey levels a supervision view's background is drawn from."
    )
    source_distance: float | None = Field(
        None, gt=0, description="Rescale the scene so the source camera sits at this distance (None: keep it)."
    )
    frame: Literal["camera", "upright"] = Field(
        "camera", description="Model frame (geometry.cameras.FRAMES): camera (OpenLRM's) or upright (turned about "
        "the vertical only; the source camera keeps its elevation). Saved in the model's config.json.",
    )
    depth: bool = Field(True, description="Decode each supervision view's depth map (for train.loss.depth).")
    normal: bool | None = Field(
        None, description="Decode each supervision view's normal map (or, without one, take the normals of its depth "
        "map); None: when train.loss.normal is on."
    )
    source_layers: bool | None = Field(
        None, description="Compute the source view's ground-truth depth layers from the occupancy grid (about 10 ms "
        "per sample at 112 px); None: when train.loss.source_layers or train.lift_warmup_steps is on."
    )
    occupancy_points: int = Field(
        4096, ge=0, le=1 << 20,
        description="Labelled ground-truth occupancy points per sample (for train.loss.occupancy); 0: none.",
    )
    occupancy_surface_fraction: float = Field(
        0.0, ge=0, le=1,
        description="Share of the occupancy points drawn at the surface (the rest: uniform in the box; measured in docs/train.md).",
    )

    occupancy_ray_fraction: float = Field(
        0.0, ge=0, le=1,
        description="Share of the occupancy points drawn on the source view's rays through its silhouette, at "
        "uniform depths across the box (after the surface points; docs/train.md, round 14).",
    )

    def surface_point_count(self) -> int:
        """How many of each sample's occupancy points are surface points (they come first, ``sample.occupancy_sample``)."""
        return int(round(self.occupancy_points * self.occupancy_surface_fraction))

    def ray_point_count(self) -> int:
        """How many of each sample's occupancy points lie on the source view's rays (after the surface points)."""
        return int(round(self.occupancy_points * self.occupancy_ray_fraction))

    def uniform_point_start(self) -> int:
        """Where each sample's uniform occupancy points begin: the volume the eval's IoU counts, for calibration."""
        return self.surface_point_count() + self.ray_point_count()

    @model_validator(mode="after")
    def _check_sizes(self) -> "SampleConfig":
        if self.render_res_low > self.render_res_high:
            raise ValueError(f"render_res_low ({self.render_res_low}) > render_res_high ({self.render_res_high})")
        if self.patch_size > self.render_res_low:
            raise ValueError(f"patch_size ({self.patch_size}) > render_res_low ({self.render_res_low})")
        if self.surface_point_count() + self.ray_point_count() > self.occupancy_points:
            raise ValueError(f"occupancy_surface_fraction ({self.occupancy_surface_fraction}) + occupancy_ray_fraction "
                             f"({self.occupancy_ray_fraction}) is more than all the occupancy points")
        return self


class LossConfig(BaseModel):
    """Loss weights; the perceptual term needs backbone weights from a local path (no downloads)."""

    model_config = ConfigDict(extra="forbid")

    pixel: float = Field(1.0, ge=0, description="Weight of the pixel MSE on the composited patch.")
    perceptual: float = Field(1.0, ge=0, description="Weight of the LPIPS-style loss (used only with perceptual_weights).")
    mask: float = Field(1.0, ge=0, description="Weight of the MSE between rendered opacity and target alpha.")
    tv: float = Field(0.0, ge=0, description="Weight of the total-variation loss on the triplanes.")
    depth: float = Field(0.5, ge=0, description="Weight of the L1 between rendered and Blender depth (foreground pixels).")
    occupancy: float = Field(1.0, ge=0, description="Weight of the BCE of ground-truth occupancy at sampled points.")
    source_depth: float = Field(
        0.0, ge=0,
        description="Weight of the L1 between the image lift's front depth and the source view's depth map (measured "
        "no better than 0, docs/train.md).",
    )
    normal: float = Field(
        0.0, ge=0,
        description="Weight of 1 - cosine between the normals of the rendered depth and Blender's normal maps, or those "
        "of the ground-truth depth in shards without normal maps (foreground pixels of every supervision crop; raises "
        "NC, costs Chamfer and F-score: docs/train.md).",
    )
    source_layers: float = Field(
        0.0, ge=0,
        description="Weight of the L1 between the image lift's front/back depth layers and the source view's first/last "
        "ground-truth surface (from the occupancy grid). Measured best on "
        "an H200 at 1.0 (docs/train.md, run L750).",
    )
    perceptual_weights: str | None = Field(
        None, description="VGG16 backbone weights (torchvision layout, .pth or .safetensors); None: no perceptual loss."
    )
    perceptual_linear_weights: str | None = Field(
        None, description="LPIPS linear-head weights (lin0..lin4); None: equal weights per channel."
    )


class DataConfig(BaseModel):
    """Where training shards come from and how they stream to workers."""

    model_config = ConfigDict(extra="forbid")

    shards: str | None = Field(
        None, description="Shard folder, glob or comma-separated tar list; None: <workdir>/render/shards."
    )
    backend: Literal["webdataset", "ray_data"] = Field(
        "webdataset", description="Streaming reader (measured faster: webdataset; see docs/train.md)."
    )
    loader_workers: int = Field(2, ge=0, description="Decode processes per training worker (webdataset backend; 0: in the worker).")
    shuffle_buffer: int = Field(16, ge=1, description="Samples held for shuffling (raw bytes, before decoding).")
    max_bad_fraction: float = Field(
        0.5, ge=0, le=1,
        description="Undecodable samples are skipped and counted; past this share of those seen the run stops (webdataset).",
    )


class TrainConfig(BaseModel):
    """Ray Train + DeepSpeed fine-tuning settings."""

    model_config = ConfigDict(extra="forbid")

    num_workers: int = Field(1, ge=1, description="Ray Train workers (one per GPU, or CPU processes).")
    max_steps: int = Field(10, ge=1, description="Optimizer steps of the whole run (a resumed run continues to it).")
    max_minutes: float | None = Field(
        None, gt=0, description="Stop earlier, with a checkpoint, after this many minutes of training steps "
        "(start-up excluded; the lr schedule still spans max_steps). None: no time limit.",
    )
    device: Device = Field("auto", description="'auto': CUDA when the Ray cluster has GPUs, else CPU; 'cpu'; 'cuda'.")
    cpus_per_worker: float = Field(1.0, gt=0)
    run_name: str = Field("lrm", description="Ray Train run name; re-running the same name resumes it.")
    storage_path: str | None = Field(None, description="Ray Train storage (None: <workdir>/train/ray).")
    # optimisation
    micro_batch_size: int = Field(16, ge=1, description="Samples per worker per forward pass.")
    grad_accum_steps: int = Field(1, ge=1)
    lr: float = Field(4e-4, gt=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Cosine floor as a fraction of lr.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up from 0 to lr over these optimizer steps.")
    lift_warmup_steps: int = Field(
        0, ge=0,
        description="The first steps train only the image lift's depth layers (its 2D encoder, on train.loss.source_layers' "
        "targets): steps many times cheaper than full ones. Counted in max_steps and the lr schedule; needs a model with "
        "an image lift and occupancy grids in the shards.",
    )
    weight_decay: float = Field(0.05, ge=0, description="AdamW decay (biases and norm weights excluded).")
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0, description="Global gradient-norm clip (0: off).")
    zero_stage: int = Field(1, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    precision: TrainPrecision = Field(
        "auto",
        description="'bf16': bf16 weights (DeepSpeed bf16); 'autocast_bf16': fp32 weights under bf16 autocast (train "
        "only); 'fp32'; 'auto': autocast_bf16 on CUDA (fastest step measured, docs/train.md), fp32 on CPU.",
    )
    activation_checkpointing: bool = Field(False, description="Recompute encoder/transformer blocks in backward.")
    compile_blocks: bool | Literal["auto"] = Field(
        "auto", description="torch.compile each encoder and transformer block and the image lift's cell MLP and refiner "
        "(LRM.compile_blocks; the first full step pays about 15 s). 'auto': on GPU with ZeRO 0 or 1 (OpenLRM-small's step "
        "231 -> 194 ms on an H200, docs/train.md); true: on GPU at any ZeRO stage (2 and 3 not measured); false: eager.",
    )
    field_sampling: Literal["auto", "rows", "grid_sample"] = Field(
        "auto", description="How the field samples its triplanes and volume: 'rows' reads and adds whole channels-last "
        "feature rows (model/field_sampling.py: Triton kernels on CUDA; OpenLRM-small's step 363 -> 247 ms on an H200, "
        "docs/train.md); 'grid_sample': torch's own forward and backward, the reference (the same values), and on CPU "
        "the faster one; 'auto': rows on CUDA, "
        "grid_sample on CPU.",
    )
    seed: int | None = Field(None, description="Data/recipe seed (None: the pipeline seed).")
    # checkpoints, logging, failures
    checkpoint_every: int = Field(1000, ge=1, description="Report a checkpoint every this many steps (and at the end).")
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(2, ge=0, description="FailureConfig retries (each restarts from the last checkpoint).")
    log_every: int = Field(10, ge=1, description="Steps between progress lines and TensorBoard scalars.")
    image_every: int = Field(200, ge=1, description="Steps between TensorBoard image grids.")
    export_dir: str | None = Field(None, description="Final HF-layout model folder (None: <workdir>/train/model).")
    torch_extensions_dir: str | None = Field(
        None, description="DeepSpeed's JIT op cache (None: ~/.cache/lrm-dist/torch_extensions/<versions, environment> on each node, "
        "which scripts/setup-env.sh fills with the CPU op ahead of any run)."
    )
    fault_at_step: int | None = Field(
        None, ge=1, description="Fault injection: the last rank exits once right after this step's checkpoint."
    )
    sample: SampleConfig = Field(default_factory=SampleConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    data: DataConfig = Field(default_factory=DataConfig)

    def compiles_blocks(self, use_gpu: bool) -> bool:
        """Whether training compiles the model's blocks (``compile_blocks`` resolved for the device and ZeRO stage)."""
        if not use_gpu or self.compile_blocks is False:
            return False
        return self.compile_blocks is True or self.zero_stage <= 1

    def exact_field_sampling(self, use_gpu: bool) -> bool:
        """Whether the field samples with torch's own grid_sample (``field_sampling`` resolved for the device)."""
        return self.field_sampling == "grid_sample" or (self.field_sampling == "auto" and not use_gpu)

    @model_validator(mode="after")
    def _resolve_targets(self) -> "TrainConfig":
        """Decode normal maps and compute depth layers only for a run that trains on them (unless ``sample`` says)."""
        wanted = {"normal": self.loss.normal > 0, "source_layers": self.loss.source_layers > 0 or self.lift_warmup_steps > 0}
        unset = {key: value for key, value in wanted.items() if getattr(self.sample, key) is None}
        if unset:
            self.sample = self.sample.model_copy(update=unset)
        return self
