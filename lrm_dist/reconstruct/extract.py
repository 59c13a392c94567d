"""Triplanes -> density grid -> iso-surface -> coloured mesh, in the model's canonical frame.

The grid query uses the triplane's structure: the decoder's first layer is linear in the three
plane features, so its pre-activation on an R^3 grid is the broadcast sum of three R^2 tables (one
per plane). Only the decoder's hidden layers and its density output run per grid point, which makes
a 256^3 grid cheap. Two meshers (``MESHERS``) turn the grid into vertices and faces; ``vertex_colours``
reads the colour field at the vertices. ``lrm_dist.reconstruct.Reconstructor`` runs these steps for
eval and serve alike; ``lrm_dist.reconstruct.mesh_files`` writes the results as files.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from torch import nn

from lrm_dist.model.lift import unpack
from lrm_dist.model.renderer import activate_density
from lrm_dist.model.synthesizer import Synthesizer


def _plane_tables(planes: torch.Tensor, coords: torch.Tensor) -> list[torch.Tensor]:
    """Each plane [3, C, H, W] sampled on the grid ``coords x coords``: T[p][a, b] = f_p(coords[a], coords[b])."""
    r = coords.numel()
    first = coords.view(r, 1).expand(r, r)
    second = coords.view(1, r).expand(r, r)
    grid = torch.stack([first, second], dim=-1).unsqueeze(0).float()  # [1, R, R, 2]: (u=width, v=height)
    # float32 as the field's own sampling (model/field_sampling.py): bf16 coordinates would round off the grid
    tables = F.grid_sample(planes.float(), grid.expand(3, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    return list(tables.permute(0, 2, 3, 1).unbind(0))  # 3 x [R, R, C]


def _decoder_parts(synth: Synthesizer) -> tuple[nn.Linear, nn.Module, nn.Linear]:
    """The field decoder as (input layer, hidden stack, output layer), taken from its ``net`` by structure
    (first module, the ones between, last module) rather than by hard-coded layer numbers, so any depth works.

    The grid factorisation needs the input layer to be a linear map of the 3*C plane features and the
    output layer's channel 0 to be the raw density (``TriplaneDecoder``'s contract); both are checked.
    """
    net = synth.decoder.net
    first, last = net[0], net[-1]
    if not (isinstance(first, nn.Linear) and isinstance(last, nn.Linear) and last.out_features == 4):
        raise TypeError(f"density_grid needs a decoder of Linear input and 4-channel Linear output layers, got {net}")
    return first, net[1:-1], last


GRID_CHUNK_CUDA = 1 << 21
GRID_CHUNK_CPU = 1 << 14
"""Default grid points per pass: large passes on a GPU; small ones on a CPU, where a pass's [points, 64] temporaries
then stay in cache (the demo's model at 128^3 on 2 cores: 4.0 s in passes of 2^21 points, 1.4 s in passes of 2^14)."""


@torch.no_grad()
def density_grid(synth: Synthesizer, planes: torch.Tensor, resolution: int, chunk: int | None = None) -> torch.Tensor:
    """Activated density on the grid linspace(-1, 1, R)^3 of one object's planes [3, C, H, W] -> [R, R, R] float32.

    ``grid[i, j, k]`` is the density at (x_i, y_j, z_k); ``chunk`` bounds the points per pass (None:
    ``GRID_CHUNK_CUDA`` or ``GRID_CHUNK_CPU`` by the planes' device); passes are blocks of whole z-rows.
    """
    first, hidden, last = _decoder_parts(synth)
    r = resolution
    chunk = (GRID_CHUNK_CUDA if planes.is_cuda else GRID_CHUNK_CPU) if chunk is None else chunk
    coords = torch.linspace(-1.0, 1.0, r, device=planes.device)
    packed = planes.unsqueeze(0)  # the triplanes, plus the image lift's volume when the model has one
    lifted = unpack(packed)[1] is not None
    t_xy, t_xz, t_zy = _plane_tables(planes[:3], coords)
    w0 = first.weight.to(t_xy.dtype)
    c = t_xy.shape[-1]
    pre_xy = t_xy @ w0[:, :c].T + first.bias.to(t_xy.dtype)  # [x, y, hidden]
    pre_xz = t_xz @ w0[:, c : 2 * c].T                        # [x, z, hidden]
    pre_yz = (t_zy @ w0[:, 2 * c :].T).transpose(0, 1)         # [y, z, hidden]
    out = torch.empty(r, r, r, device=planes.device)
    step_x = max(1, chunk // r**2)
    step_y = r if step_x > 1 else max(1, min(r, chunk // r))
    for i in range(0, r, step_x):
        for j in range(0, r, step_y):
            xs, ys = slice(i, i + step_x), slice(j, j + step_y)
            h = pre_xy[xs, ys, None] + pre_xz[xs, None, :] + pre_yz[None, ys]
            if lifted:  # the volume's term at this block's grid points, [x, y, z, hidden]
                pts = torch.stack(torch.meshgrid(coords[xs], coords[ys], coords, indexing="ij"), dim=-1)
                h = h + synth.volume_term(packed, pts.view(1, -1, 3)).view(*pts.shape[:3], -1).to(h.dtype)
            raw = F.linear(hidden(h), last.weight[:1], last.bias[:1])[..., 0]  # the density channel only
            out[xs, ys] = activate_density(raw.float())
    return out


def occupied_box(grid: torch.Tensor, threshold: float, margin: int = 1) -> tuple[slice, slice, slice] | None:
    """Index slices of the smallest box holding every voxel above ``threshold`` (plus a margin); None if none."""
    occ = grid > threshold
    if not bool(occ.any()):
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = torch.nonzero(occ.any(dim=other)).flatten()
        lo, hi = int(idx.min()) - margin, int(idx.max()) + margin + 1
        box.append(slice(max(lo, 0), min(hi, grid.shape[axis])))
    return tuple(box)


class NoSurface(ValueError):
    """The density has no iso-surface at the threshold (the message says which setting to change)."""


def _no_surface_message(name: str, threshold: float, lo: float, hi: float, setting: str) -> str:
    """One line with the next step: the density range against the threshold, the ``setting`` to change, train first."""
    side = "at or below" if hi <= threshold else "above"
    mid = (lo + hi) / 2
    fix = (f"set {setting} inside that range (e.g. --set {setting}={mid:.3g})" if hi > lo and mid > 0
           else f"the density is flat, so no {setting} gives a surface")
    return (f"{name}: no surface at density threshold {threshold} (density range [{lo:.3g}, {hi:.3g}], all {side} it): "
            f"{fix}; an untrained or random model has no object surface: train it first")


def _surface_box(
    grid: torch.Tensor, threshold: float, name: str, setting: str,
) -> tuple[torch.Tensor, np.ndarray]:
    """The zero-padded sub-grid holding the surface, and its index offset in ``grid``; errors if none."""
    box = occupied_box(grid, threshold)
    if box is None or bool((grid[box] > threshold).all()):
        raise NoSurface(_no_surface_message(name, threshold, float(grid.min()), float(grid.max()), setting))
    # Pad with zero density so surfaces touching the box boundary still close.
    return F.pad(grid[box].float(), (1, 1, 1, 1, 1, 1)), np.array([s.start - 1 for s in box], dtype=np.float32)


def _to_canonical(verts: np.ndarray, offset: np.ndarray, resolution: int) -> np.ndarray:
    return ((verts + offset) * (2.0 / (resolution - 1)) - 1.0).astype(np.float32)


def marching_cubes(
    grid: torch.Tensor, threshold: float, name: str = "object", setting: str = "serve.density_threshold",
) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface of a density grid over [-1, 1]^3 at ``threshold`` (scikit-image, CPU): vertices, faces.

    Without a surface, ``NoSurface`` (a ``ValueError``) says to change ``setting`` (the config key the threshold came from).
    """
    from skimage.measure import marching_cubes as skimage_mc

    sub, offset = _surface_box(grid, threshold, name, setting)
    # Density is higher inside: skimage's default winding then faces inwards, so flip it outwards.
    verts, faces, _, _ = skimage_mc(sub.cpu().numpy(), level=threshold, gradient_direction="ascent")
    return _to_canonical(verts, offset, grid.shape[0]), faces.astype(np.int64)


def surface_nets(
    grid: torch.Tensor, threshold: float, name: str = "object", setting: str = "serve.density_threshold",
) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface by naive surface nets on the grid's device (GPU-friendly, no lookup tables).

    One vertex per cell the surface crosses, at the mean of its edge crossings; one quad (two
    triangles) per grid edge the surface crosses, joining the four cells around that edge, wound so
    its normal points from inside (density above ``threshold``) to outside. Returns vertices in the
    canonical frame and faces, and errors without a surface, as ``marching_cubes`` does.
    """
    sub, offset = _surface_box(grid, threshold, name, setting)
    inside = sub > threshold
    cells = torch.tensor(sub.shape, device=sub.device) - 1
    cell_ids, positions = [], []
    for axis in range(3):
        n = sub.shape[axis] - 1
        g0, g1 = sub.narrow(axis, 0, n), sub.narrow(axis, 1, n)
        in0 = inside.narrow(axis, 0, n)
        cross = in0 != inside.narrow(axis, 1, n)
        idx = torch.nonzero(cross)  # [K, 3] lower end of each crossed edge
        t = ((threshold - g0[cross]) / (g1[cross] - g0[cross])).clamp(0, 1)
        pos = idx.float()
        pos[:, axis] += t
        o1, o2 = (axis + 1) % 3, (axis + 2) % 3
        ring = []
        for d1, d2 in ((1, 1), (0, 1), (0, 0), (1, 0)):  # cells around the edge, counter-clockwise about +axis
            cell = idx.clone()
            cell[:, o1] -= d1
            cell[:, o2] -= d2
            ring.append((cell[:, 0] * cells[1] + cell[:, 1]) * cells[2] + cell[:, 2])
        ring = torch.stack(ring, dim=1)  # [K, 4]
        outward_positive = in0[cross]  # inside at the lower end: the normal points along +axis
        ring = torch.where(outward_positive.unsqueeze(1), ring, ring.flip(1))
        cell_ids.append(ring.flatten())
        positions.append(pos.repeat_interleave(4, dim=0))
    ids = torch.cat(cell_ids)
    unique, inverse = torch.unique(ids, return_inverse=True)
    sums = torch.zeros(len(unique), 3, device=sub.device).index_add_(0, inverse, torch.cat(positions))
    counts = torch.bincount(inverse, minlength=len(unique)).clamp_min(1).unsqueeze(1)
    # Each crossing was added once per cell around its edge: the mean over a cell's crossings.
    verts = (sums / counts).cpu().numpy()
    ring = inverse.view(-1, 4)
    faces = torch.cat([ring[:, [0, 1, 2]], ring[:, [0, 2, 3]]], dim=0).cpu().numpy().astype(np.int64)
    return _to_canonical(verts, offset, grid.shape[0]), faces


MESHERS = {"marching_cubes": marching_cubes, "surface_nets": surface_nets}


def smooth_vertices(verts: np.ndarray, faces: np.ndarray, passes: int) -> np.ndarray:
    """Taubin's smoothing (a shrinking then an inflating Laplacian step per pass, lambda 0.5, mu -0.53):
    removes the grid's terraces and the field's ripples while keeping the volume, unlike plain Laplacian
    smoothing. Returns new vertices (float32); ``passes`` 0 returns them unchanged."""
    if passes <= 0 or len(faces) == 0:
        return verts
    mesh = trimesh.Trimesh(vertices=verts.astype(np.float64), faces=faces, process=False)
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=passes)
    return np.asarray(mesh.vertices, dtype=np.float32)


@torch.no_grad()
def vertex_colours(synth: Synthesizer, planes: torch.Tensor, verts: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """RGBA uint8 per vertex from the colour field (planes [3, C, H, W] of one object)."""
    pts = torch.from_numpy(verts).to(planes.device).unsqueeze(0)
    rgb, _ = synth.query(planes.unsqueeze(0), pts, chunk=chunk)
    rgb8 = (rgb[0].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return np.concatenate([rgb8, np.full((len(rgb8), 1), 255, np.uint8)], axis=1)


def build_mesh(verts: np.ndarray, faces: np.ndarray, colours: np.ndarray) -> trimesh.Trimesh:
    """A trimesh in the canonical frame (z up, front -y) with vertex colours."""
    return trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=colours, process=False)
