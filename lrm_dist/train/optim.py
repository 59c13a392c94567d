"""AdamW parameter groups and the warm-up + cosine learning-rate schedule.

Biases, normalisation weights and other 1-D parameters get no weight decay (decaying a LayerNorm's
gain towards 0 only hurts); every matrix, convolution and embedding table does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.RMSNorm)


def no_decay(module: nn.Module, name: str, param: nn.Parameter) -> bool:
    """True for a parameter that should not be decayed: a bias, a norm layer's weight, or any 1-D tensor."""
    return name.endswith("bias") or isinstance(module, _NORMS) or param.ndim <= 1


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: decayed matrices, undecayed biases and norms."""
    decay, plain, seen = [], [], set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (plain if no_decay(module, name, param) else decay).append(param)
    if not decay and not plain:
        raise ValueError("model has no trainable parameters")
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": plain, "weight_decay": 0.0, "name": "no_decay"},
    ]


def cosine_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier after ``step`` optimizer steps: linear warm-up to 1, then cosine down to ``min_ratio``.

    Warm-up gives (step + 1) / warmup_steps, so the first update already moves; the cosine spans
    steps warmup_steps .. total_steps and stays at ``min_ratio`` afterwards.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], eps: float, fused: bool = False
) -> torch.optim.AdamW:
    """A torch AdamW over ``param_groups`` (runs on CPU and GPU; DeepSpeed wraps it); ``fused``: one CUDA kernel."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, fused=fused or None)


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying ``cosine_factor``; DeepSpeed steps it once per optimizer step and checkpoints it."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, total_steps, warmup_steps, min_ratio)
    )
