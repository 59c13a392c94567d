"""AdamW parameter groups and the warm-up + cosine schedule."""

import math

import pytest
import torch

from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.train.optim import build_optimizer, build_scheduler, cosine_factor, param_groups


def test_param_groups_split_biases_and_norms_from_matrices():
    model = LRM(SIZES["tiny"])
    decay, plain = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in plain["params"]}
    assert decayed.isdisjoint(undecayed)
    assert decayed | undecayed == set(names.values())
    assert all(not n.endswith("bias") for n in decayed)
    assert "transformer.norm.weight" in undecayed and "transformer.layers.0.norm1.norm.weight" in undecayed
    assert "transformer.layers.0.mlp.0.bias" in undecayed
    assert "transformer.layers.0.mlp.0.weight" in decayed and "pos_embed" in decayed
    assert "transformer.layers.0.self_attn.in_proj_weight" in decayed


def test_frozen_parameters_are_left_out():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    model[0].weight.requires_grad_(False)
    decay, plain = param_groups(model, 0.1)
    assert decay["params"] == [] and len(plain["params"]) == 3


def test_cosine_factor_values():
    assert cosine_factor(0, 10, 2) == pytest.approx(0.5)
    assert cosine_factor(1, 10, 2) == pytest.approx(1.0)
    assert cosine_factor(2, 10, 2) == pytest.approx(1.0)
    assert cosine_factor(6, 10, 2) == pytest.approx(0.5)
    assert cosine_factor(4, 10, 2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_factor(10, 10, 2) == pytest.approx(0.0)
    assert cosine_factor(50, 10, 2, min_ratio=0.1) == pytest.approx(0.1)


def test_scheduler_steps_the_optimizer_lr():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-8)
    sched = build_scheduler(opt, total_steps=4, warmup_steps=1)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-3, 1e-3, 1e-3 * 0.75, 1e-3 * 0.25, 0.0])
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)
