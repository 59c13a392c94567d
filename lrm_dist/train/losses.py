"""Training losses: pixel MSE, LPIPS-style perceptual, mask (opacity vs alpha), triplane total variation,
and the geometry terms: depth L1 against Blender's depth, normals of the rendered depth against Blender's
normal maps, the image lift's depth layers and occupancy BCE against the ground-truth mesh.

The perceptual term needs VGG16 weights from a path (nothing is downloaded); without them it is
disabled and the log says so once. ``LossFn`` returns the weighted total plus every term for logging.
The occupancy term reads the field's raw density as a logit: ``raw - OCCUPANCY_LOGIT_OFFSET``, so an
even chance of "inside" is exactly OpenLRM's iso-level (activated density 3.0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lrm_dist.log import get_logger
from lrm_dist.model.config import DEFAULT_ISO_LEVEL
from lrm_dist.train.config import LossConfig

log = get_logger(__name__)

OCCUPANCY_LOGIT_OFFSET = 1.0 + math.log(math.expm1(DEFAULT_ISO_LEVEL))
"""Raw density at which softplus(raw - 1) equals the default iso-level (about 3.95)."""


def pixel_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels and channels."""
    return F.mse_loss(pred.float(), target.float())


def mask_loss(opacity: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Mean squared error between rendered opacity and the target alpha."""
    return F.mse_loss(opacity.float(), alpha.float())


def tv_loss(planes: torch.Tensor) -> torch.Tensor:
    """Total variation of triplanes [N, 3, C, H, W]: mean squared difference of vertical plus horizontal neighbours."""
    planes = planes.float()
    dh = (planes[..., 1:, :] - planes[..., :-1, :]).pow(2).mean()
    dw = (planes[..., :, 1:] - planes[..., :, :-1]).pow(2).mean()
    return dh + dw


def occupancy_logits(raw_density: torch.Tensor) -> torch.Tensor:
    """The occupancy logit of the field's raw density (see the module doc)."""
    return raw_density.float() - OCCUPANCY_LOGIT_OFFSET


def occupancy_loss(raw_density: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean binary cross-entropy of inside/outside labels [N, M] against the raw density [N, M]."""
    bce = F.binary_cross_entropy_with_logits(occupancy_logits(raw_density), labels.float(), reduction="none")
    return (bce * mask).sum() / mask.sum().clamp_min(1.0)


def depth_loss(depth: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean absolute error of rendered vs target planar depth ([N, V, 1, h, w] each)."""
    return ((depth.float() - target.float()).abs() * mask).sum() / mask.sum().clamp_min(1.0)


def depth_normals(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-frame unit normals [N, V, 3, h-1, w-1] of planar depth maps [N, V, 1, h, w] seen through pixel
    intrinsics [N, V, 6] (fx, fy, cx, cy of the crop), from forward differences, turned towards the camera."""
    n, v, _, h, w = depth.shape
    fx, fy, cx, cy = (intrinsics[..., i].float().view(n, v, 1, 1) for i in range(4))
    rows = torch.arange(h, device=depth.device, dtype=torch.float32).view(1, 1, h, 1) + 0.5
    cols = torch.arange(w, device=depth.device, dtype=torch.float32).view(1, 1, 1, w) + 0.5
    d = depth[:, :, 0].float()
    points = torch.stack([(cols - cx) / fx * d, -(rows - cy) / fy * d, -d], dim=2)  # OpenGL camera, [N, V, 3, h, w]
    du = points[..., :-1, 1:] - points[..., :-1, :-1]
    dv = points[..., 1:, :-1] - points[..., :-1, :-1]
    normal = F.normalize(torch.cross(dv, du, dim=2), dim=2)
    facing = (normal * points[..., :-1, :-1]).sum(2, keepdim=True) < 0  # towards the camera at the origin
    return torch.where(facing, normal, -normal)


def normal_loss(depth: torch.Tensor, intrinsics: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cosine between the normals of rendered planar depth [N, V, 1, h, w] (``depth_normals``) and
    camera-frame target normals [N, V, 3, h, w], where the target's mask [N, V, 1, h, w] covers a pixel and its
    right and lower neighbours."""
    pred = depth_normals(depth, intrinsics)
    m = (mask[..., :-1, :-1] * mask[..., :-1, 1:] * mask[..., 1:, :-1]).float()
    cosine = (pred * target[..., :-1, :-1].float()).sum(2, keepdim=True)
    return ((1.0 - cosine) * m).sum() / m.sum().clamp_min(1.0)


def layers_loss(
    front: torch.Tensor, back: torch.Tensor, first: torch.Tensor, last: torch.Tensor, hit: torch.Tensor
) -> torch.Tensor:
    """Predicted front/back depth layers [N, 1, h, w] against the first/last surface: the mean L1 of both
    where the ray meets the object (``hit``), plus the predicted thickness where it does not (pulled to 0)."""
    if front.shape[-2:] != first.shape[-2:]:
        raise ValueError(f"depth layers {tuple(first.shape)} do not match the model's {tuple(front.shape)}")
    front, back, hit = front.float(), back.float(), hit.float()
    on = ((front - first).abs() + (back - last).abs()) * hit
    off = (back - front).abs() * (1.0 - hit)
    return (on + off).sum() / hit.new_tensor(float(hit.numel()))


class LossFn:
    """The weighted training loss of one batch; the perceptual network lives here, not in the model."""

    def __init__(self, cfg: LossConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.perceptual = None
        if cfg.perceptual > 0 and cfg.perceptual_weights:
            from lrm_dist.train.perceptual import PerceptualLoss

            self.perceptual = PerceptualLoss(cfg.perceptual_weights, cfg.perceptual_linear_weights).to(device)
            log.info("perceptual loss enabled (VGG16 from %s)", cfg.perceptual_weights)
        elif cfg.perceptual > 0:
            log.warning("perceptual loss disabled: train.loss.perceptual_weights is not set (no downloads here)")

    @property
    def perceptual_enabled(self) -> bool:
        return self.perceptual is not None

    @property
    def needs_points(self) -> bool:
        """Whether the model must also evaluate the field at the batch's occupancy points."""
        return self.cfg.occupancy > 0

    def layers_only(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The lift's warm-up loss (``train.lift_warmup_steps``): the depth-layer term alone, weight 1."""
        value = self._layers(out, batch)
        return value, {"source_layers": float(value.detach())}

    @staticmethod
    def _layers(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return layers_loss(out["source_front_depth"], out["source_back_depth"], batch["source_first_depth"],
                           batch["source_last_depth"], batch["source_layers_mask"])

    def __call__(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The model's output (``LRM.forward``) and the batch (``train.sample``) -> (total, terms).

        Geometry terms need their batch members (``render_depth``..., ``occupancy_points``...); a
        batch without them, or whose samples all lack them (zero masks), contributes 0 to the term.
        """
        rgb, opacity, planes = out["rgb"], out["opacity"], out["planes"]
        target, alpha = batch["render_image"], batch["render_alpha"]
        if rgb.shape != target.shape or opacity.shape != alpha.shape:
            raise ValueError(f"prediction/target shapes differ: {tuple(rgb.shape)} vs {tuple(target.shape)}")
        terms: dict[str, torch.Tensor] = {"pixel": pixel_loss(rgb, target)}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(rgb.flatten(0, 1), target.flatten(0, 1))
        if self.cfg.mask > 0:
            terms["mask"] = mask_loss(opacity, alpha)
        if self.cfg.tv > 0:
            terms["tv"] = tv_loss(planes)
        if self.cfg.depth > 0 and "render_depth" in batch:
            terms["depth"] = depth_loss(out["depth"], batch["render_depth"], batch["render_depth_mask"])
        if self.cfg.source_depth > 0 and "source_front_depth" in out and "source_depth" in batch:
            front = out["source_front_depth"]
            if front.shape[-2:] != batch["source_depth"].shape[-2:]:
                raise ValueError(f"source depth {tuple(batch['source_depth'].shape)} does not match the model's "
                                 f"front depth {tuple(front.shape)}")
            terms["source_depth"] = depth_loss(front, batch["source_depth"], batch["source_depth_mask"])
        if self.cfg.normal > 0 and "render_normal" in batch:
            terms["normal"] = normal_loss(
                out["depth"], batch["render_intrinsics"], batch["render_normal"], batch["render_normal_mask"]
            )
        if self.cfg.source_layers > 0 and "source_back_depth" in out and "source_first_depth" in batch:
            terms["source_layers"] = self._layers(out, batch)
        if self.cfg.occupancy > 0 and "points_raw_density" in out:
            terms["occupancy"] = occupancy_loss(out["points_raw_density"], batch["occupancy_labels"], batch["occupancy_mask"])
        total = sum(getattr(self.cfg, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
