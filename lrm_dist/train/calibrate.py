"""The iso-level a trained model meshes at: the density threshold that best reproduces the labels.

Training sees the field's raw density at labelled occupancy points every step; the last batches'
values (``IsoCalibrator``) choose the threshold with the highest IoU of "density above it" against
"inside the ground truth". It is saved in the exported model's ``config.json`` (``iso_level``), and
infer, eval and serve mesh at it unless told otherwise.
"""

from __future__ import annotations

import torch

from lrm_dist.model.renderer import activate_density


def best_iso_level(raw: torch.Tensor, labels: torch.Tensor, candidates: int = 256) -> float | None:
    """Activated density at the raw-density threshold with the best IoU (None without inside points)."""
    raw, inside = raw.float().flatten(), labels.flatten() > 0.5
    if raw.numel() == 0 or not inside.any():
        return None
    lo, hi = float(raw.min()), float(raw.max())
    thresholds = torch.linspace(lo, hi, candidates)[1:]
    above = raw.unsqueeze(0) > thresholds.unsqueeze(1)  # [T, P]
    hit = (above & inside).sum(1).float()
    union = (above | inside).sum(1).float()
    best = int(torch.argmax(hit / union.clamp_min(1.0)))
    return float(activate_density(thresholds[best]))


class IsoCalibrator:
    """Keeps the raw densities and labels of the last ``keep`` batches' valid occupancy points."""

    def __init__(self, keep: int = 32):
        self.keep = keep
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, raw: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> None:
        valid = mask.flatten() > 0
        self.batches.append((raw.detach().float().flatten()[valid].cpu(), labels.flatten()[valid].cpu()))
        self.batches = self.batches[-self.keep :]

    def iso_level(self) -> float | None:
        if not self.batches:
            return None
        return best_iso_level(torch.cat([b[0] for b in self.batches]), torch.cat([b[1] for b in self.batches]))
