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


def best_iso_level(raw: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Activated density at the raw-density threshold with the best IoU (None without inside points).

    Exact over every threshold between two neighbouring values, by one sort (on the tensors' device):
    with the points in falling raw density, calling the first k inside gives hits = the running count
    of inside labels and union = k + inside - hits.
    """
    raw, inside = raw.float().flatten(), (labels.flatten() > 0.5).float()
    total = float(inside.sum()) if raw.numel() else 0.0
    if total == 0:
        return None
    ordered, order = torch.sort(raw, descending=True)
    hits = torch.cumsum(inside[order], 0)
    count = torch.arange(1, raw.numel() + 1, device=raw.device, dtype=hits.dtype)
    iou = hits / (count + total - hits)
    iou[:-1][ordered[:-1] == ordered[1:]] = -1.0  # a threshold cannot split equal values
    k = int(torch.argmax(iou))
    threshold = ordered[k] if k + 1 == raw.numel() else (ordered[k] + ordered[k + 1]) / 2
    return float(activate_density(threshold))


class IsoCalibrator:
    """Keeps the raw densities and labels of the last ``keep`` batches' valid occupancy points (at most
    ``per_batch`` of each, on the device they come from: no host copy per step)."""

    def __init__(self, keep: int = 32, per_batch: int = 1 << 16):
        self.keep, self.per_batch = keep, per_batch
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, raw: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> None:
        raw, labels, mask = raw.detach().float().flatten(), labels.flatten(), mask.flatten()
        stride = max(1, raw.numel() // self.per_batch)
        raw, labels, mask = raw[::stride], labels[::stride], mask[::stride]
        valid = mask > 0
        self.batches.append((torch.where(valid, raw, torch.nan), labels))
        self.batches = self.batches[-self.keep :]

    def iso_level(self) -> float | None:
        if not self.batches:
            return None
        raw = torch.cat([b[0] for b in self.batches])
        labels = torch.cat([b[1] for b in self.batches])
        valid = ~torch.isnan(raw)
        return best_iso_level(raw[valid], labels[valid])


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
