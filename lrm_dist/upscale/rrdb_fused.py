"""A concat-free, GPU-friendlier formulation of a trained RRDBNet (same maths, same weights).

A dense block's conv k reads ``cat(x, x1, .., x_{k-1})``. Splitting each conv's weight by input segment
turns the block into one conv per *segment*: when x_s appears, a single conv computes its contribution
to every later conv at once (32 -> 160/128/96/64 output channels instead of five 32-wide convs on
growing concats). No concatenation is materialised, and the GEMMs are wider (better tensor-core use);
the partial sums are added (with the LeakyReLU) in one pointwise pass, which torch.compile fuses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrm_dist.upscale.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet


class FusedRDB(nn.Module):
    """A ResidualDenseBlock with its five convs regrouped by input segment."""

    def __init__(self, rdb: ResidualDenseBlock) -> None:
        super().__init__()
        convs = [rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5]
        self.num_feat = rdb.conv1.in_channels
        self.grow = rdb.conv1.out_channels
        f, g = self.num_feat, self.grow
        bounds = [0, f, f + g, f + 2 * g, f + 3 * g, f + 4 * g]  # input-channel range of each segment
        weights = []
        for s in range(5):
            lo, hi = bounds[s], bounds[s + 1]
            weights.append(torch.cat([c.weight.detach()[:, lo:hi] for c in convs[s:]], 0).clone())
        self.weights = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.bias = nn.Parameter(torch.cat([c.bias.detach() for c in convs], 0).clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grow
        partial = [F.conv2d(x, self.weights[0], self.bias, padding=1)]
        for s in range(1, 5):
            # Input of conv s: the s-th grow slice of every earlier segment's partial sum.
            pre = partial[0][:, (s - 1) * g : s * g]
            for j in range(1, s):
                pre = pre + partial[j][:, (s - 1 - j) * g : (s - j) * g]
            partial.append(F.conv2d(F.leaky_relu(pre, 0.2), self.weights[s], padding=1))
        out = partial[0][:, 4 * g :]
        for j in range(1, 5):
            out = out + partial[j][:, (4 - j) * g :]
        return out * 0.2 + x


class FusedRRDB(nn.Module):
    """An RRDB made of FusedRDBs."""

    def __init__(self, block: RRDB) -> None:
        super().__init__()
        self.rdbs = nn.Sequential(FusedRDB(block.rdb1), FusedRDB(block.rdb2), FusedRDB(block.rdb3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdbs(x) * 0.2 + x


class FusedRRDBNet(nn.Module):
    """Inference-only RRDBNet with fused dense blocks; built from a loaded :class:`RRDBNet`."""

    def __init__(self, net: RRDBNet) -> None:
        super().__init__()
        self.net = net
        self.scale = net.scale
        self.body = nn.Sequential(*[FusedRRDB(b) for b in net.body])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.net.head(x)
        feat = feat + self.net.conv_body(self.body(feat))
        return self.net.tail(feat)


def fuse_rrdbnet(net: RRDBNet) -> FusedRRDBNet:
    """The fused form of ``net`` (eval mode, same device and dtype); ``net``'s own body is dropped."""
    fused = FusedRRDBNet(net)
    fused.net.body = nn.Sequential()
    return fused.eval()
