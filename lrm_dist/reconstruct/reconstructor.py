"""The one ``Reconstructor``: a batch of (image, source camera) -> one mesh each, for eval and serve.

It owns the loaded model, its device and autocast precision, and one ``MeshSettings`` (mesher, grid
resolution, iso-level); ``mesh_settings`` is the single rule for their defaults. Meshes come back in
the model's canonical frame: the frame the source camera's features are given in (training puts the
source camera at (0, -d, 0) looking at the origin), z up, front -y, the field inside [-1, 1]^3.
Callers map them on from there: eval into the asset's object frame, serve into files.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import trimesh

from lrm_dist.device import precision_dtype, resolve_device
from lrm_dist.reconstruct.extract import (
    GRID_CHUNK_CUDA, MESHERS, NoSurface, build_mesh, density_grid, smooth_vertices, vertex_colours,
)


@dataclass(frozen=True)
class MeshSettings:
    """How planes become a mesh: mesher (a ``MESHERS`` name), grid side, iso-level of the activated density,
    Taubin smoothing passes over the result.

    ``threshold`` None means the model's calibrated iso-level (``LRMConfig.surface_level()``);
    ``setting`` is the config key a "no surface" error tells the user to change.
    """

    mesher: str = "marching_cubes"
    resolution: int = 256
    threshold: float | None = None
    setting: str = "serve.density_threshold"
    grid_chunk: int | None = None  # points per grid pass; None: by device (reconstruct.extract.density_grid)
    smoothing: int = 0


def mesh_settings(serve, eval=None, model_config=None) -> MeshSettings:
    """THE defaults rule for mesh extraction, used by serve, infer and eval alike.

    ``serve`` is a ``ServeConfig``; with ``eval`` (an ``EvalConfig``), each eval setting that is set
    wins and the others fall back to serve's (so eval scores what serving ships). The iso-level is
    the eval one, else serve's, else (when ``model_config``, an ``LRMConfig``, is given) the model's
    calibrated ``surface_level()``; without a model config it stays None, meaning exactly that.
    """
    resolution, mesher, threshold = serve.mesh_resolution, serve.mesher, serve.density_threshold
    smoothing, setting = serve.mesh_smoothing, "serve.density_threshold"
    if eval is not None:
        resolution = eval.mesh_resolution or resolution
        mesher = eval.mesher or mesher
        threshold = eval.density_threshold or threshold
        smoothing = smoothing if eval.mesh_smoothing is None else eval.mesh_smoothing
        setting = "eval.density_threshold"
    if threshold is None and model_config is not None:
        threshold = model_config.surface_level()
    return MeshSettings(mesher=mesher, resolution=resolution, threshold=threshold, setting=setting,
                        grid_chunk=serve.grid_chunk, smoothing=smoothing)


@dataclass
class Reconstruction:
    """One input's result: its mesh (canonical frame, RGBA vertex colours), or None and the reason there
    is no surface; its planes [3(+G), C, H, W]; seconds per step (triplane: its share of the batch)."""

    mesh: trimesh.Trimesh | None
    planes: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)
    empty_reason: str | None = None


class Reconstructor:
    """A loaded LRM on its device: prepared images [N, 3, S, S] in [0, 1] + source cameras [N, 16] -> meshes.

    ``model`` is moved to ``device`` (a ``lrm_dist.device.Device``: 'auto' is cuda when available) and put
    in eval mode; ``precision`` (a ``lrm_dist.device.Precision``: 'auto' is bf16 on CUDA, fp32 on CPU, or a
    torch dtype) is the autocast dtype, kept as ``dtype``; ``compile`` wraps the triplane network and the
    grid query in ``torch.compile``. ``setting`` is the config section the device and precision come
    from, for errors (``serve``, ``eval.actors``).
    """

    def __init__(self, model, settings: MeshSettings | None = None, device: str | torch.device = "auto",
                 precision: str | torch.dtype = "auto", compile: bool = False, setting: str = "serve"):
        self.device = device if isinstance(device, torch.device) else resolve_device(device, f"{setting}.device")
        self.dtype = (precision if isinstance(precision, torch.dtype)
                      else precision_dtype(precision, self.device, f"{setting}.precision"))
        self.model = model.to(self.device).eval()
        self.settings = settings or MeshSettings()
        if self.settings.mesher not in MESHERS:
            raise ValueError(f"unknown mesher {self.settings.mesher!r} (expected one of {', '.join(MESHERS)})")
        self._planes_fn = self.model.forward_planes
        self._grid_fn = density_grid
        self._grid_chunk = self.settings.grid_chunk
        if compile:
            self._planes_fn = torch.compile(self._planes_fn)
            self._grid_fn = torch.compile(density_grid)
            if self._grid_chunk is None:  # a compiled grid query unrolls its passes: few large ones on any device
                self._grid_chunk = GRID_CHUNK_CUDA

    @property
    def source_size(self) -> int:
        """The side of the square images the model takes."""
        return self.model.source_size

    @property
    def threshold(self) -> float:
        """The iso-level meshes are extracted at: the settings' one, else the model's calibrated one."""
        return self.settings.threshold if self.settings.threshold is not None else self.model.config.surface_level()

    def with_settings(self, **changes) -> Reconstructor:
        """A shallow copy (same model, device, compiled functions) with some ``MeshSettings`` fields changed."""
        other = copy.copy(self)
        other.settings = dataclasses.replace(self.settings, **changes)
        return other

    @contextmanager
    def autocast(self):
        """no_grad plus autocast to ``dtype`` (off for float32) on the reconstructor's device."""
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            yield

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def planes(self, images, cameras) -> torch.Tensor:
        """images [N, 3, S, S] and cameras [N, 16] (numpy or torch) -> planes [N, 3(+G), C, H, W] (autocast dtype)."""
        x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images).to(self.device)
        c = torch.as_tensor(np.ascontiguousarray(cameras) if isinstance(cameras, np.ndarray) else cameras).to(self.device)
        with self.autocast():
            return self._planes_fn(x, c)

    def extract(self, planes: torch.Tensor, name: str = "object") -> tuple[trimesh.Trimesh, dict[str, float]]:
        """One object's planes -> its coloured mesh (canonical frame) and seconds per step (grid, mesh, colours).

        Raises ``NoSurface`` (a ``ValueError``: one line naming ``name`` and the setting to change) when
        the density has no surface at the iso-level.
        """
        t1 = self._sync()
        with self.autocast():
            grid = self._grid_fn(self.model.synthesizer, planes, self.settings.resolution, self._grid_chunk)
        t2 = self._sync()
        verts, faces = MESHERS[self.settings.mesher](grid, self.threshold, name, self.settings.setting)
        verts = smooth_vertices(verts, faces, self.settings.smoothing)
        t3 = self._sync()
        with self.autocast():
            colours = vertex_colours(self.model.synthesizer, planes, verts)
        mesh = build_mesh(verts, faces, colours)
        t4 = self._sync()
        return mesh, {"grid": t2 - t1, "mesh": t3 - t2, "colours": t4 - t3}

    def reconstruct(self, images, cameras, names: Sequence[str] | None = None) -> list[Reconstruction]:
        """A batch of inputs -> one ``Reconstruction`` each: planes in one pass, then one mesh per input.

        An input without a surface at the iso-level gets ``mesh=None`` and the one-line reason (the
        others are still meshed); any other failure raises.
        """
        if len(images) == 0:
            return []
        names = list(names) if names is not None else ["object"] * len(images)
        t0 = self._sync()
        planes = self.planes(images, cameras)
        share = (self._sync() - t0) / len(planes)
        out = []
        for name, plane in zip(names, planes):
            try:
                mesh, timings = self.extract(plane, name)
            except NoSurface as exc:
                out.append(Reconstruction(None, plane, {"triplane": share}, str(exc)))
                continue
            out.append(Reconstruction(mesh, plane, {"triplane": share, **timings}))
        return out
