"""Training losses: pixel MSE, LPIPS-style perceptual, mask (opacity vs alpha), triplane total variation.

The perceptual term needs VGG16 weights from a path (nothing is downloaded); without them it is
disabled and the log says so once. ``LossFn`` returns the weighted total plus every term for logging.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lrm_dist.log import get_logger
from lrm_dist.train.config import LossConfig

log = get_logger(__name__)


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

    def __call__(
        self, rgb: torch.Tensor, opacity: torch.Tensor, planes: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """rgb/target [N, V, 3, h, w], opacity/alpha [N, V, 1, h, w], planes [N, 3, C, H, W] -> (total, terms)."""
        if rgb.shape != target.shape or opacity.shape != alpha.shape:
            raise ValueError(f"prediction/target shapes differ: {tuple(rgb.shape)} vs {tuple(target.shape)}")
        terms: dict[str, torch.Tensor] = {"pixel": pixel_loss(rgb, target)}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(rgb.flatten(0, 1), target.flatten(0, 1))
        if self.cfg.mask > 0:
            terms["mask"] = mask_loss(opacity, alpha)
        if self.cfg.tv > 0:
            terms["tv"] = tv_loss(planes)
        total = sum(getattr(self.cfg, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
