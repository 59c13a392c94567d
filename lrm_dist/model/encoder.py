"""The image encoder: a DINOv2-with-registers ViT, written here, with DINOv2's parameter names.

Key names (under ``encoder.model.``) equal those of DINOv2's released weights as OpenLRM stores them
(without DINOv2's unused ``mask_token``), so OpenLRM checkpoints load strictly. The learned position
embedding is kept at its trained grid (37x37 for 518 px) and resized bicubically (antialiased) to the
input's patch grid, as DINOv2's register models do. Input: RGB in [0, 1], no mean/std normalisation
(OpenLRM feeds it this way); output: the final-norm CLS token followed by the patch tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class ViTArch:
    """One ViT shape: width, depth, heads, patch size, register tokens, trained position grid side."""

    dim: int
    depth: int
    heads: int
    patch: int = 14
    registers: int = 4
    pos_grid: int = 37


ENCODER_ARCHS: dict[str, ViTArch] = {
    "dinov2_vits14_reg": ViTArch(dim=384, depth=12, heads=6),
    "dinov2_vitb14_reg": ViTArch(dim=768, depth=12, heads=12),
    "dinov2_tiny14_reg": ViTArch(dim=32, depth=2, heads=2, pos_grid=8),  # ours, for tests
}


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: [N, 3, H, W] -> [N, (H/p)*(W/p), D]."""

    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (bias) and an output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class LayerScale(nn.Module):
    """Per-channel residual scale ``gamma`` (DINOv2 initialises it to 1 for these models)."""

    def __init__(self, dim: int, init: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 with a 4x hidden width."""

    def __init__(self, dim: int, ratio: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(dim, ratio * dim)
        self.fc2 = nn.Linear(ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    """Pre-norm transformer block with layer scale: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """DINOv2-style ViT with register tokens; ``forward`` returns normed [CLS, patches] (registers dropped)."""

    def __init__(self, arch: ViTArch):
        super().__init__()
        self.arch = arch
        self.gradient_checkpointing = False
        self.patch_embed = PatchEmbed(arch.patch, arch.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + arch.pos_grid**2, arch.dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, arch.registers, arch.dim))
        self.blocks = nn.ModuleList(ViTBlock(arch.dim, arch.heads) for _ in range(arch.depth))
        self.norm = nn.LayerNorm(arch.dim, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """[1, 1 + rows*cols, D]: the CLS position plus the patch grid resized to ``rows x cols``."""
        grid = self.arch.pos_grid
        if rows == cols == grid:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.float().reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(rows, cols), mode="bicubic", antialias=True, align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(self.pos_embed.dtype)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n, _, height, width = image.shape
        p = self.arch.patch
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1)
        x = x + self.position_embedding(height // p, width // p)
        x = torch.cat([x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.norm(x)
        return torch.cat([x[:, :1], x[:, 1 + self.arch.registers :]], dim=1)


class DinoV2Encoder(nn.Module):
    """Image [N, 3, H, W] in [0, 1] (H, W multiples of 14) -> tokens [N, 1 + H*W/196, D]."""

    def __init__(self, model_name: str, freeze: bool = False):
        super().__init__()
        if model_name not in ENCODER_ARCHS:
            raise ValueError(f"encoder_model_name {model_name!r} is not one of {sorted(ENCODER_ARCHS)}")
        self.model = VisionTransformer(ENCODER_ARCHS[model_name])
        self.freeze = freeze
        if freeze:
            self.model.requires_grad_(False)

    @property
    def patch_size(self) -> int:
        return self.model.arch.patch

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"encoder input must be [N, 3, H, W], got {tuple(image.shape)}")
        p = self.patch_size
        if image.shape[-1] % p or image.shape[-2] % p:
            raise ValueError(f"encoder input side {tuple(image.shape[-2:])} is not a multiple of the patch size {p}")
        return self.model(image)
