"""Image lift: a feature volume of pixel-aligned image features, next to the triplanes (an lrm-dist option).

OpenLRM's only path from image to triplanes is cross-attention from learned tokens to DINOv2 tokens.
Trained from scratch on a few hundred assets, that path carries almost no image signal for a long
time: the field starts, and stays, nearly the same for every input. The lift gives the field the
input's silhouette and appearance from the first step. A small CNN encodes the source image; every
cell of a G^3 grid over the [-1, 1]^3 box is projected into the image through the source camera (the
same 16 numbers the camera embedder reads) and samples the CNN features and the pixel there; an MLP
turns them, with the cell's depth and position and a global summary of the image (the object's
overall extent and kind, which say how deep it is likely to be), into the cell's feature. The field reads the volume
trilinearly at each point (``synthesizer.sample_volume``), so every point sees the image where it
projects, perspective included. (Pooling the volume into planes loses that: a plane cell averages
pixels along a line that the camera sees at very different image positions.)

Depth along each ray is what one view leaves open, so the CNN also predicts two depth layers per
pixel: where the object starts (front) and how thick it is there. Each cell gets the soft
"between front and back" test of its own depth, which is the occupancy of a shape that is one
interval deep along every ray (most furniture parts are). ``train.loss.source_layers`` supervises
both layers with the ground truth's first and last surface along each pixel (``train.sample``);
``train.loss.source_depth`` the front layer alone with the view's depth map.

The volume travels in the same tensor as the triplanes, as G extra "planes" of C channels
(``pack``/``unpack``), so everything that batches, slices, moves or caches planes keeps working. A volume finer
or coarser than the planes (``lift_resolution``) travels flattened into as many plane-sized slices as it fills.
With ``lift_interval`` the depth layers and the source camera travel there too (``unpack_interval``), so the
field can test each point, not only each cell, against the layers (``interval_features``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lrm_dist.geometry.occupancy import cell_centres
from lrm_dist.model.field_sampling import sample_rows
from lrm_dist.model.lift_encoder import lift_encoder
from lrm_dist.model.split_linear import SplitInputLinear
from lrm_dist.model.volume_refiner import VolumeRefiner


def project_points(points: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points [N, P, 3] through source cameras [N, 16] -> (grid_sample coordinates [N, P, 2], depth [N, P]).

    The camera is ``geometry.cameras.camera_features``: OpenGL c2w (3x4, row-major) and normalised
    intrinsics (fx/W, fy/H, cx/W, cy/H). Coordinates are in [-1, 1] across the image (x right, y down);
    depth is the distance in front of the camera (negative behind it).
    """
    c2w = camera[:, :12].view(-1, 3, 4)
    fx, fy, cx, cy = camera[:, 12:16].unbind(-1)
    rot, origin = c2w[:, :, :3], c2w[:, :, 3]
    local = (points - origin[:, None]) @ rot  # world -> camera: R^T (p - t), as row vectors
    depth = -local[..., 2]
    safe = torch.where(depth.abs() < 1e-4, torch.full_like(depth, 1e-4), depth)
    u = cx[:, None] + fx[:, None] * local[..., 0] / safe
    v = cy[:, None] - fy[:, None] * local[..., 1] / safe
    return torch.stack([2 * u - 1, 2 * v - 1], dim=-1), depth


def volume_slices(plane_side: int, resolution: int) -> int:
    """How many plane-sized slices (C x side x side) a C x R^3 volume fills in the packed tensor."""
    return -(-resolution**3 // plane_side**2)


def pack(planes: torch.Tensor, volume: torch.Tensor, interval: tuple[torch.Tensor, torch.Tensor] | None = None,
         ) -> torch.Tensor:
    """planes [N, 3, C, G, G] + volume [N, C, G(z), G(y), G(x)] -> [N, 3 + G, C, G, G]; a volume of another side R
    goes flattened (C-major) into ``volume_slices(G, R)`` slices, its last one padded with zeros.

    ``interval`` (the source view's front and back depth layers [N, 2, s, s] and its camera [N, 16]) adds K
    slices holding, flattened, the 16 camera numbers and both layers, in float32 (the whole tensor then is
    float32: bf16 would round the depths to 1/128 and the camera's projection with them).
    """
    n, side, resolution = planes.shape[0], planes.shape[-1], volume.shape[-1]
    if resolution == side:
        parts = [planes, volume.transpose(1, 2)]
    else:
        slices = volume_slices(side, resolution)
        flat = F.pad(volume.flatten(1), (0, slices * planes[0, 0].numel() - volume[0].numel()))
        parts = [planes, flat.view(n, slices, *planes.shape[2:])]
    if interval is not None:
        layers, camera = interval
        slice_size = planes[0, 0].numel()
        flat = torch.cat([camera.float(), layers.float().flatten(1)], 1)
        k = -(-flat.shape[1] // slice_size)
        flat = F.pad(flat, (0, k * slice_size - flat.shape[1]))
        parts = [p.float() for p in parts] + [flat.view(n, k, *planes.shape[2:])]
    return torch.cat(parts, dim=1)


def unpack(packed: torch.Tensor, resolution: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inverse of ``pack``: (planes [N, 3, C, H, W], volume [N, C, R, R, R] or None for plain triplanes);
    ``resolution`` R: the volume's side (None: the planes')."""
    if packed.shape[1] == 3:
        return packed, None
    side = packed.shape[-1]
    if resolution is None or resolution == side:
        return packed[:, :3], packed[:, 3 : 3 + side].transpose(1, 2)
    n, channels = packed.shape[0], packed.shape[2]
    flat = packed[:, 3 : 3 + volume_slices(side, resolution)].flatten(1)
    return packed[:, :3], flat[:, : channels * resolution**3].view(n, channels, resolution, resolution, resolution)


def unpack_interval(packed: torch.Tensor, side: int, resolution: int | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The depth layers [N, 2, side, side] (``side``: the lift's layer map, half the source image) and source
    camera [N, 16] that ``pack`` stored behind a volume of side ``resolution`` (None: the planes'), or None."""
    plane_side = packed.shape[-1]
    start = 3 + volume_slices(plane_side, plane_side if resolution is None else resolution)
    if packed.shape[1] <= start:
        return None
    flat = packed[:, start:].flatten(1)
    return flat[:, 16 : 16 + 2 * side * side].view(-1, 2, side, side), flat[:, :16]


INTERVAL_SHARPNESS = 0.03
"""Scene units over which the soft "between the layers" test goes from 0 to 1 (cells and points alike)."""


def interval_features(layers: torch.Tensor, camera: torch.Tensor, points: torch.Tensor, exact: bool = False,
                      ) -> torch.Tensor:
    """Each point's test against the source view's depth layers: [N, M, 3] = (between the layers, how far
    behind the front, how far before the back; the last two as tanh of tenths of a scene unit), 0 for points
    that do not project into the image. layers [N, 2, h, w] (front, back depth), camera [N, 16], points
    [N, M, 3]; the layers are read bilinearly at each point's exact projection, so the test is as sharp as
    the layers, not the lift's grid."""
    coords, depth = project_points(points.float(), camera.float())
    inside = ((coords.abs() <= 1).all(-1) & (depth > 0)).float()
    front, back = sample_rows(layers.float(), coords.clamp(-1, 1), 1, exact).unbind(-1)
    behind_front, before_back = depth - front, back - depth
    between = torch.sigmoid(behind_front / INTERVAL_SHARPNESS) * torch.sigmoid(before_back / INTERVAL_SHARPNESS)
    return torch.stack([between, torch.tanh(behind_front / 0.1), torch.tanh(before_back / 0.1)], -1) * inside[..., None]


def _fourier(points: torch.Tensor, frequencies: int) -> torch.Tensor:
    scaled = points.unsqueeze(-1) * (torch.pi * 2.0 ** torch.arange(frequencies, device=points.device))
    return torch.cat([points, scaled.sin().flatten(-2), scaled.cos().flatten(-2)], dim=-1)


class ImageLift(nn.Module):
    """Source image + camera -> feature volume [N, C, G, G, G] (z, y, x order, for 3D ``grid_sample``)."""

    def __init__(self, feature_dim: int, resolution: int, width: int = 64, frequencies: int = 2, refine: bool = False,
                 encoder: str = "conv", encoder_width: int | None = None):
        super().__init__()
        self.resolution, self.frequencies = resolution, frequencies
        self.cnn = lift_encoder(encoder, width, encoder_width)  # [N, width, S/2, S/2] (model/lift_encoder.py)
        self.layers = nn.Conv2d(width, 2, 1)  # front depth offset, thickness (before their activations)
        self.context = nn.Sequential(nn.Linear(2 * width, width), nn.GELU())
        cell_in = 2 * width + 3 + 2 + 3 + 3 * (1 + 2 * frequencies)
        self.cell_mlp = nn.Sequential(SplitInputLinear(cell_in, width), nn.GELU(), nn.Linear(width, feature_dim))
        self.refiner = VolumeRefiner(feature_dim) if refine else None
        centres = torch.from_numpy(cell_centres(resolution)).float()  # as align_corners=False sees them
        self.register_buffer("cell_points", centres.permute(2, 1, 0, 3).reshape(1, -1, 3), persistent=False)  # z-major

    def compile_parts(self, **options: Any) -> None:
        """``torch.compile`` the per-cell arithmetic and MLP and the refiner (``options``: torch.compile's
        keywords); the image encoder and the samplings stay eager. Parameter names are unchanged."""
        self._cells = torch.compile(self._cells, **options)
        if self.refiner is not None:
            self.refiner.compile(**options)

    def depth_layers(self, features: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel (front depth, thickness) [N, 1, h, w] each, in scene units along the camera's axis.

        The front is the camera's distance to the origin (where every object is centred) plus at most 1.5.
        """
        raw = self.layers(features).float()
        distance = camera[:, [3, 7, 11]].float().norm(dim=-1).view(-1, 1, 1, 1)
        return distance + 1.5 * torch.tanh(raw[:, :1]), F.softplus(raw[:, 1:] - 1.0)

    def source_layers(self, image: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """Only the source view's front and back depth [N, 2, S/2, S/2]: the 2D part, without the volume."""
        front, thickness = self.depth_layers(self.cnn(image), camera)
        return torch.cat([front, front + thickness], 1)

    def forward(self, image: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image [N, 3, S, S] in [0, 1] on white; camera [N, 16] -> (volume [N, C, G, G, G],
        the source view's predicted front and back depth [N, 2, S/2, S/2])."""
        n, g = image.shape[0], self.resolution
        features = self.cnn(image)
        front, thickness = self.depth_layers(features, camera)
        points = self.cell_points.float().expand(n, -1, -1)
        coords, depth = project_points(points, camera.float())
        grid = coords.to(features.dtype).unsqueeze(1)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, :, 0]
        pixels = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border",
                               align_corners=False)[:, :, 0]
        layers = F.grid_sample(torch.cat([front, thickness], 1), grid.float(), mode="bilinear", padding_mode="border",
                               align_corners=False)[:, :, 0]  # [N, 2, P]
        cells = self._cells(features, sampled, pixels, layers, coords, depth, points)
        volume = cells.transpose(1, 2).reshape(n, -1, g, g, g)
        return (volume if self.refiner is None else self.refiner(volume)), torch.cat([front, front + thickness], 1)

    def _cells(self, features: torch.Tensor, sampled: torch.Tensor, pixels: torch.Tensor, layers: torch.Tensor,
               coords: torch.Tensor, depth: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Each cell's feature [N, P, C] from what it samples in the image (features, pixel, depth layers
        [N, *, P]), where it projects (coords [N, P, 2], depth [N, P]), the image summary and its position
        (points [N, P, 3], the same for every item)."""
        inside = ((coords.abs() <= 1).all(-1) & (depth > 0)).to(features.dtype)
        behind_front = depth - layers[:, 0]
        before_back = layers[:, 0] + layers[:, 1] - depth
        between = torch.sigmoid(behind_front / INTERVAL_SHARPNESS) * torch.sigmoid(before_back / INTERVAL_SHARPNESS)
        context = self.context(torch.cat([features.mean((2, 3)), features.amax((2, 3))], -1))
        n, count = sampled.shape[0], points.shape[1]
        per_cell = torch.cat([  # pixel, inside, depth, the three depth-layer tests, position code
            pixels.transpose(1, 2).to(features.dtype), inside.unsqueeze(-1),
            (depth - depth.mean(1, keepdim=True)).unsqueeze(-1).to(features.dtype),
            torch.stack([behind_front, before_back, between], -1).to(features.dtype),
            _fourier(points[:1], self.frequencies).to(features.dtype).expand(n, count, -1),
        ], dim=-1)
        # the cell's input columns: sampled features, the image summary (one per image, so computed once), the rest
        width = sampled.shape[1]
        first, activation, last = self.cell_mlp
        hidden = first([(sampled.transpose(1, 2), 0), (context.unsqueeze(1), width), (per_cell, 2 * width)])
        return last(activation(hidden))
