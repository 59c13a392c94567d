"""What a trained model needs to be used as it was trained: its iso-level and its source framing.

The iso-level is the density threshold that best reproduces the labels.

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


class SourceFraming:
    """Running means of the source views training saw: camera distance, focal / side, object's share of the frame.

    Saved in ``config.json`` (``source_distance``, ``source_focal``, ``source_foreground_ratio``), so
    serving places its camera and recentres a user's image the way this model's inputs looked (a
    render-trained model sees objects at about half the frame, OpenLRM's preprocessing fills 85%).
    """

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # [distance, focal, extent, count], on the batch's device

    def add(self, source_camera: torch.Tensor, source_extent: torch.Tensor) -> None:
        """Accumulate on the batch's device: no host synchronisation on the training step's path."""
        cam, extent = source_camera.detach().double(), source_extent.detach().double()
        keep = (extent > 0).double()  # an empty source frame does not count
        distance = cam[:, [3, 7, 11]].norm(dim=1)  # the camera centre's distance from the object's origin
        step = torch.stack([(distance * keep).sum(), (cam[:, 12] * keep).sum(), (extent * keep).sum(), keep.sum()])
        self.sums = step if self.sums is None else self.sums + step

    def values(self) -> dict[str, float]:
        if self.sums is None or float(self.sums[3]) == 0:
            return {}
        d, f, e = (self.sums[:3] / self.sums[3]).tolist()
        return {"source_distance": round(d, 4), "source_focal": round(f, 4), "source_foreground_ratio": round(min(e, 1.0), 4)}
