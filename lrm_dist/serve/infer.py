"""Image -> GLB for ``lrm-dist infer`` and the Ray Serve app: preprocessing, reconstruction, export (and video).

``ImageToMesh`` frames a user's image as the model's training framed its source views (assumed
source camera, foreground ratio) and hands it to the shared ``lrm_dist.reconstruct.Reconstructor``
(which the eval stage uses too), with the mesh settings of ``mesh_settings(serve)``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from lrm_dist.geometry.cameras import camera_features, look_at_c2w, orbit_position
from lrm_dist.images import BadImage, one_line
from lrm_dist.log import get_logger, progress
from lrm_dist.model.lrm import LRM
from lrm_dist import reconstruct
from lrm_dist.reconstruct import NoSurface, Reconstruction, mesh_settings
from lrm_dist.serve.config import ServeConfig
from lrm_dist.reconstruct.mesh_files import export_mesh
from lrm_dist.serve.preprocess import check_image, expand_inputs, prepare_image

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig

log = get_logger(__name__)


def source_camera_features(distance: float, focal: float) -> torch.Tensor:
    """[1, 16] features of the canonical source camera: at (0, -distance, 0) looking at the origin, z up."""
    intrinsics = np.array([focal, focal, 0.5, 0.5, 1.0, 1.0])
    return torch.tensor(camera_features(look_at_c2w(orbit_position(distance, 0.0, 0.0)), intrinsics), dtype=torch.float32)[None]


OPENLRM_SOURCE_DISTANCE, OPENLRM_SOURCE_FOCAL = 2.0, 0.75  # OpenLRM's inference camera
DEFAULT_FOREGROUND_RATIO = 0.8


class ImageToMesh:
    """Serving's front end: a prepared user image ([3, S, S] in [0, 1]) -> its ``Reconstruction`` through
    ``recon`` (the shared ``Reconstructor``), with the source camera and framing the model was trained with."""

    def __init__(self, model: LRM, cfg: ServeConfig):
        self.cfg = cfg
        self.recon = reconstruct.Reconstructor(model, mesh_settings(cfg, model_config=model.config), cfg.device,
                                               cfg.precision, compile=cfg.compile)
        own = model.config  # how this model's training framed its source views, when it says
        self.source_distance = cfg.source_distance or own.source_distance or OPENLRM_SOURCE_DISTANCE
        self.source_focal = cfg.source_focal or own.source_focal or OPENLRM_SOURCE_FOCAL
        self.foreground_ratio = cfg.foreground_ratio or own.source_foreground_ratio or DEFAULT_FOREGROUND_RATIO
        self.source_camera = source_camera_features(self.source_distance, self.source_focal).to(self.device)

    @property
    def model(self) -> LRM:
        return self.recon.model

    @property
    def device(self) -> torch.device:
        return self.recon.device

    @property
    def source_size(self) -> int:
        return self.recon.source_size

    @property
    def density_threshold(self) -> float:
        """The iso-level meshes are extracted at (``mesh_settings``: serve's, else the model's calibrated one)."""
        return self.recon.threshold

    def with_request(self, resolution: int | None = None, threshold: float | None = None) -> ImageToMesh:
        """This pipeline (same model), or a shallow copy whose reconstructor meshes at a request's resolution/threshold."""
        changes = {k: v for k, v in (("resolution", resolution), ("threshold", threshold)) if v is not None}
        if not changes:
            return self
        other = copy.copy(self)
        other.recon = self.recon.with_settings(**changes)
        return other

    def planes(self, image: np.ndarray) -> torch.Tensor:
        """Prepared image [3, S, S] -> planes [3(+G), C, H, W] (the autocast dtype)."""
        return self.recon.planes(image[None], self.source_camera)[0]

    def reconstruct(self, image: np.ndarray, name: str = "object") -> Reconstruction:
        """Prepared image -> coloured mesh in the canonical frame, timing each step; ``NoSurface`` without one."""
        (result,) = self.recon.reconstruct(image[None], self.source_camera, [name])
        if result.mesh is None:
            raise NoSurface(result.empty_reason)
        return result

    def turntable(self, planes: torch.Tensor) -> np.ndarray:
        """Volume renderings around the object: uint8 [V, size, size, 3] (source camera's distance and focal)."""
        cfg = self.cfg
        azimuths = np.linspace(0.0, 360.0, cfg.video_views, endpoint=False)
        c2w = np.stack([look_at_c2w(orbit_position(self.source_distance, a, cfg.video_elevation)) for a in azimuths])
        c2w_t = torch.tensor(c2w, dtype=torch.float32, device=self.device)[None]
        k = torch.tensor([self.source_focal, self.source_focal, 0.5, 0.5], device=self.device).expand(1, len(azimuths), 4)
        frames = []
        with self.recon.autocast():
            for v in range(len(azimuths)):
                out = self.model.render(planes[None], c2w_t[:, v : v + 1], k[:, v : v + 1], cfg.video_size,
                                        cfg.video_size, chunk=1 << 16, jitter=False)
                frames.append(out["rgb"][0, 0].float().clamp(0, 1).permute(1, 2, 0))
        return (torch.stack(frames) * 255).round().to(torch.uint8).cpu().numpy()


def write_video(frames: np.ndarray, path: Path, fps: int = 24) -> Path:
    """Frames [V, H, W, 3] uint8 -> an animated GIF (Pillow) or MP4 (imageio with ffmpeg)."""
    if path.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    try:
        import imageio.v3 as iio

        iio.imwrite(path, frames, fps=fps)
    except (ImportError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: cannot write mp4 ({exc}); install imageio[ffmpeg] or use serve.video_format=gif") from None
    return path


@dataclass
class InferSummary:
    """What ``infer_images`` did: one record per input image (``infer.json``), ``failed`` counts bad ones."""

    out_dir: str
    records: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.records)

    def __str__(self) -> str:
        bad = [r["image"] for r in self.records if r["status"] != "ok"]
        listed = f" (failed: {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''})" if bad else ""
        return f"infer: {len(self.records) - len(bad)} reconstructed, {len(bad)} failed -> {self.out_dir}{listed}"


def infer_images(
    inputs: list[str | Path], out_dir: str | Path, cfg: PipelineConfig, model: LRM | None = None,
) -> InferSummary:
    """Reconstruct every image (files, or folders of images) into meshes under ``out_dir``.

    ``cfg``: its ``model`` and ``serve`` sections are used; ``model`` overrides
    ``cfg.model``. Every image is decoded and checked before the model loads, so bad inputs are
    reported in seconds (no model loads when none is usable). Any failure of one image (unreadable,
    no surface at the density threshold, a failed write) is logged as one line and gets a
    ``status: failed`` record with its ``error``; the others are still reconstructed. Writes
    ``<stem>.<fmt>`` per format (``chair.front.png`` -> ``chair.front.glb``; sub-folders mirror input
    folders; clashing stems numbered, see ``expand_inputs``), optional ``<stem>.gif|mp4``, and
    ``infer.json`` (one record per image, in input order), also when every image failed.
    """
    from lrm_dist.model.pretrained import build_model

    serve_cfg: ServeConfig = cfg.serve
    items = expand_inputs(list(inputs))
    out_root = Path(out_dir)
    records: list[dict | None] = [None] * len(items)
    usable = []
    for i, (path, stem) in enumerate(items):
        try:
            check_image(path, serve_cfg.remove_background, name=str(path))
            usable.append((i, path, stem))
        except (BadImage, OSError) as exc:  # OSError: the file went away or cannot be read
            records[i] = _failed_record(path, exc)
    if usable:
        recon = ImageToMesh(model if model is not None else build_model(cfg.model), serve_cfg)
        for i, path, stem in progress(usable, desc="infer", unit="image"):
            try:
                records[i] = _infer_one(recon, path, out_root, stem)
            except Exception as exc:  # this image's failure (no surface, rembg, a write, ...): the batch goes on
                records[i] = _failed_record(path, exc)
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / "infer.json").write_text(json.dumps(records, indent=2) + "\n")
    return InferSummary(str(out_root), records)


def _output(out_root: Path, stem: Path, suffix: str) -> Path:
    """``out_root/stem.suffix``, keeping every dot of the stem (``with_suffix`` would drop ``.front`` of ``chair.front``)."""
    return out_root / stem.parent / f"{stem.name}.{suffix}"


def _infer_one(recon: ImageToMesh, path: Path, out_root: Path, stem: Path) -> dict:
    """One image -> its meshes (and video) under ``out_root``; the ``ok`` record for ``infer.json``."""
    serve_cfg = recon.cfg
    start = time.perf_counter()
    image = prepare_image(path, recon.source_size, recon.foreground_ratio, serve_cfg.remove_background, name=str(path),
                          framing=serve_cfg.framing)
    result = recon.reconstruct(image, name=str(path))
    outputs = [str(export_mesh(result.mesh, _output(out_root, stem, fmt))) for fmt in serve_cfg.formats]
    if serve_cfg.video:
        video = _output(out_root, stem, serve_cfg.video_format)
        video.parent.mkdir(parents=True, exist_ok=True)
        outputs.append(str(write_video(recon.turntable(result.planes), video)))
    record = {
        "image": str(path), "status": "ok", "outputs": outputs, "n_vertices": len(result.mesh.vertices),
        "n_faces": len(result.mesh.faces), "seconds": round(time.perf_counter() - start, 4),
        **{f"seconds_{k}": round(v, 4) for k, v in result.timings.items()},
    }
    log.info("%s -> %s (%d faces, %.2f s)", path, ", ".join(outputs), record["n_faces"], record["seconds"])
    return record


def _failed_record(path: Path, exc: Exception) -> dict:
    """The ``failed`` record of one image, its error one line naming the image (logged as that line)."""
    error = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not error.startswith(f"{path}: "):  # not one of ours (BadImage, no surface): name the image and the type
        error = f"{path}: {one_line(exc)}"
        log.debug("%s failed", path, exc_info=exc)
    log.error("%s", error)
    return {"image": str(path), "status": "failed", "error": error}
