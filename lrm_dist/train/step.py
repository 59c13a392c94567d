"""One forward pass of the LRM on a training batch, shared by the Ray Train loop and the benchmark."""

from __future__ import annotations

import torch

from lrm_dist.train.sample import normalized_intrinsics


def render_cameras(c2w: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """OpenLRM's 25-number render cameras [..., 25] from c2w [..., 4, 4] and pixel intrinsics [..., 6]."""
    fx, fy, cx, cy = normalized_intrinsics(intrinsics).unbind(-1)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    k = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], dim=-1)
    return torch.cat([c2w.flatten(-2), k], dim=-1)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def forward_batch(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], dtype: torch.dtype, points: bool = False
) -> dict[str, torch.Tensor]:
    """Planes and rendered crops (``rgb``, ``opacity``, ``depth``) for a batch already on the model's device;
    with ``points``, also the raw density at the batch's ``occupancy_points``.

    Calls the module itself (``LRM.forward``), so DeepSpeed's engine and ZeRO-3's parameter gathering
    see the whole pass; the crops render as whole images through their crop cameras.
    """
    patch = batch["render_image"].shape[-1]
    return model(
        batch["source_image"].to(dtype),
        batch["source_camera"].to(dtype),
        render_cameras(batch["render_c2w"].float(), batch["render_intrinsics"].float()),
        patch, patch, None, batch["render_bg"].float(),
        batch["occupancy_points"].float() if points else None,
    )


def forward_layers(model: torch.nn.Module, batch: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The lift's warm-up pass: only the source view's predicted depth layers (``LRM.forward(layers_only=True)``,
    through the module itself as ``forward_batch``)."""
    return model(batch["source_image"].to(dtype), batch["source_camera"].to(dtype), None, 0, 0, layers_only=True)


def optimizer_step(engine, clip: float = 0.0) -> float:
    """``engine.step()`` after the micro-batch's backward; returns the global gradient norm before clipping
    (nan while accumulating, or where DeepSpeed does not report it).

    ``clip`` > 0 clips here first, at the accumulation boundary (the gradients are all-reduced by then): for
    the runs whose DeepSpeed config leaves clipping to the loop (``deepspeed_config.loop_clips_gradients``).
    """
    norm = None
    if clip > 0 and engine.is_gradient_accumulation_boundary():
        norm = torch.nn.utils.clip_grad_norm_(engine.module.parameters(), clip)
    engine.step()
    if norm is None:
        norm = engine.get_global_grad_norm()
    return float(norm) if norm is not None else float("nan")

