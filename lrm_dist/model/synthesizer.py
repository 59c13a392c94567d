"""Triplane field: sample the three feature planes at 3D points and decode colour and density with an MLP.

Planes are ordered as OpenLRM's (EG3D with its plane-axis fix): plane 0 is indexed by (x, y), plane 1
by (x, z), plane 2 by (z, y), the first coordinate running along the plane's width; points in the
[-1, 1]^3 box map to [-1, 1] plane coordinates (bilinear, ``align_corners=False``, zeros outside).
The decoder MLP (3*C -> 64 -> 64 -> 64 -> 4, ReLU) outputs density in channel 0 and colour in 1:4;
colour = sigmoid * 1.002 - 0.001, density = softplus(raw - 1) (applied by the renderer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrm_dist.model.renderer import activate_density


def sample_triplane(planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """planes [N, 3, C, H, W], points [N, M, 3] in [-1, 1]^3 -> features [N, M, 3*C] (plane-major)."""
    n, _, c, _, _ = planes.shape
    m = points.shape[1]
    x, y, z = points.to(planes.dtype).unbind(-1)
    coords = torch.stack([torch.stack(pair, dim=-1) for pair in ((x, y), (x, z), (z, y))], dim=1)
    feats = F.grid_sample(
        planes.flatten(0, 1), coords.flatten(0, 1).unsqueeze(1), mode="bilinear", padding_mode="zeros",
        align_corners=False,
    )  # [N*3, C, 1, M]
    return feats.view(n, 3, c, m).permute(0, 3, 1, 2).reshape(n, m, 3 * c)


class TriplaneDecoder(nn.Module):
    """The field MLP (key ``net.{0,2,4,6}``): [..., 3*C] -> [..., 4] (raw density, 3 colour logits)."""

    def __init__(self, triplane_dim: int, hidden: int = 64, layers: int = 4):
        super().__init__()
        dims = [3 * triplane_dim] + [hidden] * (layers - 1)
        modules: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            modules += [nn.Linear(d_in, d_out), nn.ReLU()]
        modules.append(nn.Linear(hidden, 4))
        self.net = nn.Sequential(*modules)
        for module in self.net:
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class Synthesizer(nn.Module):
    """Owns the decoder MLP; turns planes + points into colour and density."""

    def __init__(self, triplane_dim: int, samples_per_ray: int):
        super().__init__()
        self.samples_per_ray = samples_per_ray
        self.decoder = TriplaneDecoder(triplane_dim)

    def field(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points [N, M, 3] -> (rgb [N, M, 3] in [-0.001, 1.001], raw density [N, M])."""
        out = self.decoder(sample_triplane(planes, points))
        rgb = torch.sigmoid(out[..., 1:]) * 1.002 - 0.001
        return rgb, out[..., 0]

    def query(self, planes: torch.Tensor, points: torch.Tensor, chunk: int = 1 << 20) -> tuple[torch.Tensor, torch.Tensor]:
        """Colour and activated density at points [N, P, 3], ``chunk`` points per pass: ([N, P, 3], [N, P])."""
        rgbs, densities = [], []
        for start in range(0, points.shape[1], chunk):
            rgb, raw = self.field(planes, points[:, start : start + chunk])
            rgbs.append(rgb)
            densities.append(activate_density(raw))
        return torch.cat(rgbs, 1), torch.cat(densities, 1)

    def density(self, planes: torch.Tensor, points: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
        """Activated density only at points [N, P, 3] -> [N, P] (skips the colour head's activation)."""
        out = []
        for start in range(0, points.shape[1], chunk):
            raw = self.decoder(sample_triplane(planes, points[:, start : start + chunk]))[..., 0]
            out.append(activate_density(raw))
        return torch.cat(out, 1)
