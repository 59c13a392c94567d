"""The DeepSpeed config dict of a run: ZeRO stage, precision, batch sizes, clipping.

The optimizer and scheduler are built in torch (AdamW with parameter groups, a LambdaLR cosine) and
handed to ``deepspeed.initialize``, so the config has no ``optimizer``/``scheduler`` sections; that is
also what lets the same code run on CPU, where DeepSpeed's fused optimizers do not exist.
"""

from __future__ import annotations

import os
from typing import Any

from lrm_dist.train.config import TrainConfig


def name_deepspeed_accelerator(use_gpu: bool) -> None:
    """Name DeepSpeed's accelerator before DeepSpeed is imported: without CUDA it otherwise guesses CPU and
    warns "unable to detect" in every process that imports it. A DS_ACCELERATOR already set wins."""
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def resolve_train_precision(cfg: TrainConfig, use_gpu: bool) -> str:
    """``bf16``, ``autocast_bf16`` or ``fp32``: the configured one; ``auto`` is autocast_bf16 on CUDA, fp32 on CPU.

    ``train.precision`` is the shared precision vocabulary (``lrm_dist.device``) less fp16, plus
    ``autocast_bf16``: fp32 weights under bf16 autocast, where ``bf16`` puts the weights in bf16 too.

    On the H100, fp32 weights under bf16 autocast gave the faster whole step (DeepSpeed's bf16-weight
    optimizer step costs ~100 ms more on the small/base models, docs/train.md).
    """
    if cfg.precision == "auto":
        return "autocast_bf16" if use_gpu else "fp32"
    if cfg.precision != "fp32" and not use_gpu:
        raise ValueError(f"train.precision = {cfg.precision!r} needs CUDA workers; use 'fp32' or 'auto' on CPU")
    return cfg.precision


def input_dtype(precision: str):
    """The dtype the model's float inputs must have: bf16 when DeepSpeed holds bf16 weights, else fp32."""
    import torch

    return torch.bfloat16 if precision == "bf16" else torch.float32


def loop_clips_gradients(cfg: TrainConfig, use_gpu: bool) -> bool:
    """Whether the training loop, not DeepSpeed, clips the gradients: ZeRO-0 with fp32 weights (``fp32``,
    ``autocast_bf16``). DeepSpeed clips those too but never records the norm, so the loop clips (the same
    ``clip_grad_norm_``) and logs the norm it gets."""
    return cfg.grad_clip > 0 and cfg.zero_stage == 0 and resolve_train_precision(cfg, use_gpu) != "bf16"


def build_deepspeed_config(cfg: TrainConfig, world_size: int, use_gpu: bool) -> dict[str, Any]:
    """DeepSpeed's JSON config for ``world_size`` data-parallel workers."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    precision = resolve_train_precision(cfg, use_gpu)
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage >= 2:
        zero.update(overlap_comm=use_gpu, contiguous_gradients=True, reduce_scatter=True)
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "train_batch_size": cfg.micro_batch_size * cfg.grad_accum_steps * world_size,
        "gradient_clipping": 0.0 if loop_clips_gradients(cfg, use_gpu) else cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": False},
        # fp32 weights and optimizer, matmuls in bf16 (as OpenLRM trains with accelerate's bf16 autocast)
        "torch_autocast": {"enabled": precision == "autocast_bf16", "dtype": "bfloat16"},
        # The torch AdamW runs on CPU too; DeepSpeed would otherwise refuse a non-DeepSpeed optimizer under ZeRO.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,  # progress lines are ours (lrm_dist.train.loop)
        "wall_clock_breakdown": False,
    }
