"""Triplane field: sample the three feature planes at 3D points and decode colour and density with an MLP.

Planes are ordered as OpenLRM's (EG3D with its plane-axis fix): plane 0 is indexed by (x, y), plane 1
by (x, z), plane 2 by (z, y), the first coordinate running along the plane's width; points in the
[-1, 1]^3 box map to [-1, 1] plane coordinates (bilinear, ``align_corners=False``, zeros outside).
The decoder MLP (3*C -> 64 -> 64 -> 64 -> 4, ReLU) outputs density in channel 0 and colour in 1:4;
colour = sigmoid * 1.002 - 0.001, density = softplus(raw - 1) (applied by the renderer).
With an image lift (``model/lift.py``) the planes tensor also carries a feature volume, read
trilinearly at each point and added to the first layer's pre-activation through ``volume_proj``
(a key OpenLRM's checkpoints do not have, created only for such models); with ``lift_interval`` each
point's own test against the lift's depth layers is added too, through ``interval_proj`` (zero at
initialisation, so such a model starts as the one without it).
"""

from __future__ import annotations

import torch
from torch import nn

from lrm_dist.model.field_sampling import sample_rows
from lrm_dist.model.lift import interval_features, unpack, unpack_interval
from lrm_dist.model.renderer import activate_density


def sample_triplane(planes: torch.Tensor, points: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """planes [N, 3, C, H, W] (extra packed slices ignored), points [N, M, 3] in [-1, 1]^3 -> [N, M, 3*C] (plane-major).

    ``exact``: ``F.grid_sample`` forward and backward instead of ``field_sampling``'s row kernels (the same values)."""
    x, y, z = points.unbind(-1)
    coords = torch.stack([torch.stack(pair, dim=-1) for pair in ((x, y), (x, z), (z, y))], dim=1)
    return sample_rows(planes[:, :3].flatten(0, 1), coords.flatten(0, 1), 3, exact)


def sample_volume(volume: torch.Tensor, points: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """volume [N, C, G(z), G(y), G(x)], points [N, M, 3] in [-1, 1]^3 -> trilinear features [N, M, C]."""
    return sample_rows(volume, points, 1, exact)


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
        # He initialisation keeps the features' scale through the ReLUs (torch's default shrinks it ~2.5x
        # per layer, so a fresh field is flat: raw density std 0.01 over the box, and learning stalls).
        for module in self.net:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor, first_layer_extra: torch.Tensor | None = None) -> torch.Tensor:
        """features [..., 3*C] -> [..., 4]; ``first_layer_extra`` [..., hidden] is added before the first ReLU."""
        if first_layer_extra is None:
            return self.net(features)
        return self.net[1:](self.net[0](features) + first_layer_extra)


class Synthesizer(nn.Module):
    """Owns the decoder MLP; turns planes + points into colour and density."""

    def __init__(self, triplane_dim: int, samples_per_ray: int, volume: bool = False, interval_side: int | None = None,
                 volume_resolution: int | None = None):
        super().__init__()
        self.samples_per_ray = samples_per_ray
        # True: F.grid_sample forward and backward for the field's sampling (the reference; train.field_sampling)
        self.exact_sampling = False
        self.decoder = TriplaneDecoder(triplane_dim)
        hidden = self.decoder.net[0].out_features
        self.volume_proj = nn.Linear(triplane_dim, hidden, bias=False) if volume else None
        # the lift volume's side when it differs from the planes' (None: the same), for ``unpack``
        self.volume_resolution = volume_resolution
        # lift_interval: the side of the lift's depth-layer maps packed behind the volume (None: off)
        self.interval_side = interval_side
        self.interval_proj = nn.Linear(3, hidden, bias=False) if interval_side else None
        if self.interval_proj is not None:
            nn.init.zeros_(self.interval_proj.weight)

    def volume_term(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor | None:
        """The lift's contribution to the first layer at points [N, M, 3] ([N, M, hidden]; None without a lift):
        its volume's features there, and with ``interval_proj`` each point's test against its depth layers."""
        _, volume = unpack(planes, self.volume_resolution)
        if volume is None or self.volume_proj is None:
            return None
        term = self.volume_proj(sample_volume(volume, points, self.exact_sampling))
        interval = unpack_interval(planes, self.interval_side, self.volume_resolution) if self.interval_proj is not None else None
        if interval is not None:
            features = interval_features(*interval, points, self.exact_sampling)
            term = term + self.interval_proj(features.to(self.interval_proj.weight.dtype)).to(term.dtype)
        return term

    def raw(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output [N, M, 4] at points [N, M, 3]."""
        return self.decoder(sample_triplane(planes, points, self.exact_sampling), self.volume_term(planes, points))

    def field(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points [N, M, 3] -> (rgb [N, M, 3] in [-0.001, 1.001], raw density [N, M])."""
        out = self.raw(planes, points)
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
            raw = self.raw(planes, points[:, start : start + chunk])[..., 0]
            out.append(activate_density(raw))
        return torch.cat(out, 1)
