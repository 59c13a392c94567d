"""The triplane transformer: learned triplane tokens cross-attend to image tokens, modulated by the camera.

Each block (DiT-style adaLN): x += CrossAttn(ModLN1(x, c), image); x += SelfAttn(ModLN2(x, c));
x += MLP(ModLN3(x, c)); attention has no biases. Parameter names follow ``torch.nn.MultiheadAttention``
(``in_proj_weight`` when key and query widths agree, else ``q/k/v_proj_weight``; ``out_proj.weight``)
so OpenLRM's checkpoints load; the computation uses ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class ModLN(nn.Module):
    """LayerNorm whose output is shifted and scaled per sample: norm(x) * (1 + scale) + shift."""

    def __init__(self, dim: int, mod_dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(mod_dim, 2 * dim))

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        shift, scale = self.mlp(mod).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


class Attention(nn.Module):
    """Bias-free multi-head attention with ``nn.MultiheadAttention``'s parameter layout."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        kv_dim = dim if kv_dim is None else kv_dim
        self.heads = heads
        self.fused = kv_dim == dim
        if self.fused:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(dim, dim))
            self.k_proj_weight = nn.Parameter(torch.empty(dim, kv_dim))
            self.v_proj_weight = nn.Parameter(torch.empty(dim, kv_dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.fused:
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                nn.init.xavier_uniform_(w)
        nn.init.xavier_uniform_(self.out_proj.weight)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: [N, L, D]; context: [N, S, kv_dim] (None: self-attention). Returns [N, L, D]."""
        if context is None:
            if not self.fused:
                raise ValueError("self-attention needs equal query and key widths")
            q, k, v = F.linear(x, self.in_proj_weight).chunk(3, dim=-1)
        elif self.fused:
            w_q, w_kv = self.in_proj_weight.split([x.shape[-1], 2 * x.shape[-1]])
            q = F.linear(x, w_q)
            k, v = F.linear(context, w_kv).chunk(2, dim=-1)
        else:
            q = F.linear(x, self.q_proj_weight)
            k, v = F.linear(context, self.k_proj_weight), F.linear(context, self.v_proj_weight)
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        return self.out_proj(out.transpose(1, 2).flatten(2))


class ConditionModulationBlock(nn.Module):
    """Cross-attention to the image, self-attention, 4x GELU MLP; each after a camera-modulated LayerNorm."""

    def __init__(self, dim: int, cond_dim: int, mod_dim: int, heads: int, eps: float = 1e-6):
        super().__init__()
        self.norm1 = ModLN(dim, mod_dim, eps)
        self.cross_attn = Attention(dim, heads, kv_dim=cond_dim)
        self.norm2 = ModLN(dim, mod_dim, eps)
        self.self_attn = Attention(dim, heads)
        self.norm3 = ModLN(dim, mod_dim, eps)
        # Indices 0 and 3 as in OpenLRM (Linear, GELU, Dropout, Linear, Dropout).
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(self.norm1(x, mod), cond)
        x = x + self.self_attn(self.norm2(x, mod))
        return x + self.mlp(self.norm3(x, mod))


class TransformerDecoder(nn.Module):
    """A stack of ``ConditionModulationBlock``s and a final LayerNorm (eps 1e-6)."""

    def __init__(self, layers: int, dim: int, heads: int, cond_dim: int, mod_dim: int, eps: float = 1e-6):
        super().__init__()
        self.gradient_checkpointing = False
        self.layers = nn.ModuleList(
            ConditionModulationBlock(dim, cond_dim, mod_dim, heads, eps) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        """x: [N, L, D] tokens; cond: [N, S, cond_dim] image tokens; mod: [N, mod_dim]."""
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, cond, mod, use_reentrant=False)
            else:
                x = layer(x, cond, mod)
        return self.norm(x)
