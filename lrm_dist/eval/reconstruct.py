"""A held-out asset's input view -> the model's mesh in the asset's canonical object frame.

The input is prepared exactly as training prepares its source view (``lrm_dist.train.sample``):
composited on white, resized to the encoder's side, cameras canonicalised so the source sits at
(0, -d, 0). The model then predicts in that canonicalised frame; ``model_to_object`` undoes the
canonicalisation, so the mesh lands in the same frame as the ground truth. Mesh extraction is the
serving path's (``lrm_dist.serve.mesh``): density grid, marching cubes, vertex colours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lrm_dist.geometry.cameras import camera_features, canonicalize_poses, object_to_model_frame


@dataclass
class PreparedInput:
    """The model's input for one asset plus the map of its predictions back to the object frame."""

    image: np.ndarray           # float32 [3, S, S] in [0, 1], on white
    camera: np.ndarray          # float32 [16] source-camera features (canonicalised)
    model_to_object: np.ndarray  # float64 [4, 4]: canonicalised-frame point -> object-frame point


@dataclass
class PredictedMesh:
    """A reconstruction in the object frame (empty arrays and a reason when there is no surface)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    empty_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def prepare_input(
    rgba: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, source_size: int,
    source_index: int = 0, source_distance: float | None = None,
) -> PreparedInput:
    """One source view as training feeds it: rgba uint8 [H, W, 4] of view ``source_index`` of all views' cameras."""
    from lrm_dist.train.sample import composite, resize

    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"input view must be uint8 [H, W, 4], got {rgba.dtype} {rgba.shape}")
    view = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1)[None].float().div_(255.0)
    image = resize(composite(view, 1.0), source_size)[0].numpy().astype(np.float32)
    poses = canonicalize_poses(c2w, source_index=source_index, distance=source_distance)
    camera = camera_features(poses[source_index], np.asarray(intrinsics)[source_index]).astype(np.float32)
    to_model = object_to_model_frame(c2w, source_index, source_distance)
    return PreparedInput(image, camera, np.linalg.inv(to_model))


def _empty(reason: str, timings: dict[str, float]) -> PredictedMesh:
    return PredictedMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), np.zeros((0, 4), np.uint8),
                         reason, timings)


@torch.no_grad()
def reconstruct_meshes(
    model, inputs: list[PreparedInput], resolution: int, threshold: float, device: torch.device,
    dtype: torch.dtype = torch.float32, grid_chunk: int = 1 << 21, mesher: str = "marching_cubes",
) -> list[PredictedMesh]:
    """Triplanes for a batch of inputs in one pass, then one mesh per input (object frame, vertex colours),
    extracted with ``mesher`` (a name of ``serve.mesh.MESHERS``, as serving uses)."""
    from lrm_dist.serve.mesh import MESHERS, density_grid, vertex_colours

    if not inputs:
        return []
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    t0 = time.perf_counter()
    images = torch.from_numpy(np.stack([i.image for i in inputs])).to(device)
    cameras = torch.from_numpy(np.stack([i.camera for i in inputs])).to(device)
    with autocast:
        planes = model.forward_planes(images, cameras)
    share = (time.perf_counter() - t0) / len(inputs)
    out = []
    for prepared, plane in zip(inputs, planes):
        timings = {"triplane": share}
        t1 = time.perf_counter()
        with autocast:
            grid = density_grid(model.synthesizer, plane, resolution, grid_chunk)
        t2 = time.perf_counter()
        timings["grid"] = t2 - t1
        try:
            verts, faces = MESHERS[mesher](grid, threshold, "object", "eval.density_threshold")
        except ValueError as exc:  # no iso-surface: the prediction is empty (scored, not skipped)
            out.append(_empty(str(exc).splitlines()[0], timings))
            continue
        with autocast:
            colors = vertex_colours(model.synthesizer, plane, verts)
        m = prepared.model_to_object
        verts_obj = (verts.astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
        timings["mesh"] = time.perf_counter() - t2
        out.append(PredictedMesh(verts_obj, faces.astype(np.int64), colors, None, timings))
    return out
