"""Random state dicts with the official Real-ESRGAN key names and shapes (built from the naming scheme)."""

from __future__ import annotations

import torch


def rrdb_state(num_block: int, scale: int = 4, num_feat: int = 64, grow: int = 32, seed: int = 0) -> dict:
    """A random state dict with the official RRDBNet key names and shapes (as in RealESRGAN_x4plus.pth)."""
    gen = torch.Generator().manual_seed(seed)
    in_ch = 3 * {4: 1, 2: 4, 1: 16}[scale]

    def conv(prefix: str, cin: int, cout: int) -> dict:
        return {f"{prefix}.weight": torch.randn(cout, cin, 3, 3, generator=gen) * 0.02,
                f"{prefix}.bias": torch.randn(cout, generator=gen) * 0.01}

    state = conv("conv_first", in_ch, num_feat)
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                state |= conv(f"body.{b}.rdb{r}.conv{c}", num_feat + (c - 1) * grow, grow if c < 5 else num_feat)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        state |= conv(name, num_feat, num_feat)
    return state | conv("conv_last", num_feat, 3)


def srvgg_state(num_conv: int, upscale: int = 4, num_feat: int = 64, seed: int = 0) -> dict:
    """A random state dict with the official SRVGGNetCompact keys (body.{2i} convs, body.{2i+1} PReLU)."""
    gen = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for i in range(num_conv + 1):
        state[f"body.{2 * i}.weight"] = torch.randn(num_feat, cin, 3, 3, generator=gen) * 0.05
        state[f"body.{2 * i}.bias"] = torch.randn(num_feat, generator=gen) * 0.01
        state[f"body.{2 * i + 1}.weight"] = torch.rand(num_feat, generator=gen) * 0.3
        cin = num_feat
    last = 2 * (num_conv + 1)
    state[f"body.{last}.weight"] = torch.randn(3 * upscale**2, num_feat, 3, 3, generator=gen) * 0.05
    state[f"body.{last}.bias"] = torch.randn(3 * upscale**2, generator=gen) * 0.01
    return state
