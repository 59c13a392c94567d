"""Occupancy Networks' reconstruction metrics on meshes in the evaluation frame (the unit cube).

* **IoU**: occupancy of both meshes at points uniform in the cube [-0.5, 0.5]^3 grown by ``padding``
  on each side; |pred & gt| / |pred | gt|.
* **Chamfer-L1**: 0.5 * (accuracy + completeness), where accuracy is the mean unsquared distance
  from predicted surface points to their nearest ground-truth surface point, completeness the reverse.
* **Normal consistency**: mean |n_pred . n_gt| of nearest-neighbour pairs, both directions averaged.
* **F-score@t**: harmonic mean of precision (predicted points within t of the ground truth) and
  recall (ground-truth points within t of the prediction).

An empty prediction scores IoU 0, accuracy = completeness = sqrt(3) (the cube's diagonal, the worst
possible distance), normal consistency 0 and F-score 0: it is a row, never a skipped asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from lrm_dist.geometry.inside import contains
from lrm_dist.geometry.sampling import face_normals_and_areas, sample_box, sample_surface

WORST_DISTANCE = math.sqrt(3.0)
"""Chamfer distances of an empty prediction: the unit cube's diagonal."""


@dataclass
class MeshMetrics:
    """The metrics of one predicted mesh against its ground truth (``fscore`` aligned with ``thresholds``)."""

    iou: float
    chamfer_l1: float
    accuracy: float
    completeness: float
    normal_consistency: float
    thresholds: list[float]
    fscore: list[float]
    precision: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    empty: bool = False


@dataclass(frozen=True)
class GroundTruthSamples:
    """What the metrics need of a ground-truth mesh, computed once: occupancy and surface samples."""

    box_points: np.ndarray
    occupancy: np.ndarray
    surface_points: np.ndarray
    surface_normals: np.ndarray


def volumetric_iou(occ_a: np.ndarray, occ_b: np.ndarray) -> float:
    """|a & b| / |a | b| of two boolean occupancy vectors (1.0 when both are empty)."""
    occ_a, occ_b = np.asarray(occ_a, dtype=bool), np.asarray(occ_b, dtype=bool)
    union = np.count_nonzero(occ_a | occ_b)
    return 1.0 if union == 0 else np.count_nonzero(occ_a & occ_b) / union


def surface_metrics(
    pred_points: np.ndarray, pred_normals: np.ndarray, gt_points: np.ndarray, gt_normals: np.ndarray,
    thresholds: list[float],
) -> dict:
    """Chamfer-L1, accuracy, completeness, normal consistency and F-scores of two oriented point sets."""
    dist_to_gt, idx_gt = cKDTree(gt_points).query(pred_points, k=1)
    dist_to_pred, idx_pred = cKDTree(pred_points).query(gt_points, k=1)
    accuracy, completeness = float(dist_to_gt.mean()), float(dist_to_pred.mean())
    nc_acc = np.abs(np.einsum("ij,ij->i", pred_normals, gt_normals[idx_gt])).mean()
    nc_comp = np.abs(np.einsum("ij,ij->i", gt_normals, pred_normals[idx_pred])).mean()
    precision = [float((dist_to_gt < t).mean()) for t in thresholds]
    recall = [float((dist_to_pred < t).mean()) for t in thresholds]
    fscore = [2 * p * r / (p + r) if p + r > 0 else 0.0 for p, r in zip(precision, recall)]
    return {
        "chamfer_l1": 0.5 * (accuracy + completeness), "accuracy": accuracy, "completeness": completeness,
        "normal_consistency": float(0.5 * (nc_acc + nc_comp)), "precision": precision, "recall": recall,
        "fscore": fscore,
    }


def sample_ground_truth(
    vertices: np.ndarray, faces: np.ndarray, n_points: int = 100_000, padding: float = 0.1, seed: int = 0
) -> GroundTruthSamples:
    """Occupancy at ``n_points`` uniform box points and ``n_points`` oriented surface points (seeded)."""
    box = sample_box(n_points, -0.5 - padding, 0.5 + padding, np.random.default_rng([seed, 1]))
    points, normals = sample_surface(vertices, faces, n_points, np.random.default_rng([seed, 2]))
    return GroundTruthSamples(box, contains(vertices, faces, box), points, normals)


def empty_prediction_metrics(thresholds: list[float]) -> MeshMetrics:
    """The scores of an empty prediction: IoU 0, worst Chamfer, normal consistency 0, F-score 0."""
    zeros = [0.0] * len(thresholds)
    return MeshMetrics(
        iou=0.0, chamfer_l1=WORST_DISTANCE, accuracy=WORST_DISTANCE, completeness=WORST_DISTANCE,
        normal_consistency=0.0, thresholds=list(thresholds), fscore=zeros, precision=zeros, recall=list(zeros),
        empty=True,
    )


def is_empty_mesh(vertices: np.ndarray | None, faces: np.ndarray | None) -> bool:
    """A mesh without triangles or without surface area."""
    if vertices is None or faces is None or len(faces) == 0:
        return True
    return float(face_normals_and_areas(vertices, faces)[1].sum()) <= 0


def evaluate_mesh(
    pred_vertices: np.ndarray | None, pred_faces: np.ndarray | None, gt: GroundTruthSamples,
    thresholds: list[float] = (0.01, 0.02, 0.05), seed: int = 0,
) -> MeshMetrics:
    """All metrics of a predicted mesh (evaluation frame) against prepared ground-truth samples."""
    thresholds = [float(t) for t in thresholds]
    if is_empty_mesh(pred_vertices, pred_faces):
        return empty_prediction_metrics(thresholds)
    n = len(gt.surface_points)
    points, normals = sample_surface(pred_vertices, pred_faces, n, np.random.default_rng([seed, 3]))
    iou = volumetric_iou(contains(pred_vertices, pred_faces, gt.box_points), gt.occupancy)
    surf = surface_metrics(points, normals, gt.surface_points, gt.surface_normals, thresholds)
    return MeshMetrics(iou=iou, thresholds=thresholds, **surf)
