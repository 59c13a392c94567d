"""A held-out asset's input view -> the model's mesh in the asset's canonical object frame.

The input is prepared exactly as training prepares its source view (``lrm_dist.train.sample``):
composited on white, resized to the encoder's side, cameras canonicalised so the source sits at
(0, -d, 0). The model then predicts in that canonicalised frame; ``model_to_object`` undoes the
canonicalisation, so the mesh lands in the same frame as the ground truth. The reconstruction itself
is the shared ``lrm_dist.reconstruct.Reconstructor`` (serving's too): planes, density grid, mesher,
vertex colours, at the settings of ``mesh_settings(serve, eval)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lrm_dist.geometry.cameras import camera_features, canonicalize_poses, object_to_model_frame
from lrm_dist.reconstruct import MeshSettings, Reconstructor


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
    source_index: int = 0, source_distance: float | None = None, frame: str = "camera",
) -> PreparedInput:
    """One source view as training feeds it: rgba uint8 [H, W, 4] of view ``source_index`` of all views' cameras."""
    from lrm_dist.model_input import composite, resize

    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"input view must be uint8 [H, W, 4], got {rgba.dtype} {rgba.shape}")
    view = torch.tensor(rgba).permute(2, 0, 1)[None].float().div_(255.0)  # a copy: decoded views may be read-only
    image = resize(composite(view, 1.0), source_size)[0].numpy().astype(np.float32)
    poses = canonicalize_poses(c2w, source_index=source_index, distance=source_distance, frame=frame)
    camera = camera_features(poses[source_index], np.asarray(intrinsics)[source_index]).astype(np.float32)
    to_model = object_to_model_frame(c2w, source_index, source_distance, frame)
    return PreparedInput(image, camera, np.linalg.inv(to_model))


def _empty(reason: str, timings: dict[str, float]) -> PredictedMesh:
    return PredictedMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), np.zeros((0, 4), np.uint8),
                         reason, timings)


def object_meshes(recon: Reconstructor, inputs: list[PreparedInput]) -> list[PredictedMesh]:
    """A batch of prepared inputs through ``recon`` (one triplane pass) -> one mesh each in its object frame
    (an empty one, with the reason, where there is no surface: scored, not skipped)."""
    if not inputs:
        return []
    results = recon.reconstruct(np.stack([i.image for i in inputs]), np.stack([i.camera for i in inputs]))
    out = []
    for prepared, result in zip(inputs, results):
        if result.mesh is None:
            out.append(_empty(result.empty_reason.splitlines()[0], result.timings))
            continue
        m = prepared.model_to_object
        verts = np.asarray(result.mesh.vertices)
        verts_obj = (verts.astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
        colors = np.asarray(result.mesh.visual.vertex_colors, dtype=np.uint8)
        out.append(PredictedMesh(verts_obj, np.asarray(result.mesh.faces, dtype=np.int64), colors, None, result.timings))
    return out


def reconstruct_meshes(
    model, inputs: list[PreparedInput], resolution: int, threshold: float, device: torch.device,
    dtype: torch.dtype = torch.float32, grid_chunk: int | None = None, mesher: str = "marching_cubes",
) -> list[PredictedMesh]:
    """``object_meshes`` through a ``Reconstructor`` of ``model`` with these settings (a convenience for
    scripts and tests; the eval job's actors keep one ``Reconstructor``)."""
    settings = MeshSettings(mesher=mesher, resolution=resolution, threshold=threshold,
                            setting="eval.density_threshold", grid_chunk=grid_chunk)
    return object_meshes(Reconstructor(model, settings, device, dtype), inputs)
