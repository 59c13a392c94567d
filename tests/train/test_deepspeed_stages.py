"""DeepSpeed ZeRO 0-3 in one process (gloo): train, checkpoint, resume bit-exactly, export.

No Ray here: the stage-specific paths (optimizer state layout, ZeRO-3 parameter gathering through
``LRM.forward``, fp32 consolidation for the export) are checked directly; the Ray Train runs are in
test_train_integration.py.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.train.checkpoint import consolidated_state_dict, load_checkpoint, save_checkpoint
from lrm_dist.train.config import LossConfig, TrainConfig
from lrm_dist.train.deepspeed_config import build_deepspeed_config
from lrm_dist.train.deepspeed_ops import use_extensions_dir
from lrm_dist.train.export import export_checkpoint
from lrm_dist.train.losses import LossFn
from lrm_dist.train.optim import build_optimizer, build_scheduler
from lrm_dist.train.sample import build_sample, collate
from lrm_dist.train.step import forward_batch
from lrm_dist.train.synthetic import synthetic_asset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def process_group():
    """A gloo group of world size 1, created once per test process and kept: DeepSpeed caches its groups,
    so a re-created one breaks the next module's engines (test_checkpoint_safety.py uses this fixture too)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        use_extensions_dir(None)  # the per-user cache scripts/setup-env.sh fills
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0",
                           "WORLD_SIZE": "1"}.items():
            os.environ[key] = value
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


@pytest.fixture(scope="module")
def batches(small_recipe_module):
    rng = np.random.default_rng(0)
    out = []
    for b in range(4):
        samples = []
        for i in range(2):
            a = synthetic_asset(f"a{b}{i}", 6, 32, seed=10 * b + i)
            samples.append(build_sample(a["rgba"][:3], a["c2w"][:3], a["intrinsics"][:3], small_recipe_module, 56, rng))
        out.append(collate(samples))
    return out


@pytest.fixture(scope="module")
def small_recipe_module():
    from lrm_dist.train.config import SampleConfig

    return SampleConfig(supervision_views=3, render_res_low=24, render_res_high=32, patch_size=16)


def _engine(stage: int, arch=SIZES["tiny"], partition_all: bool = False):
    """``partition_all``: ZeRO-3 partitions even tiny's small parameters (by default it keeps those under
    100 K elements whole on every rank)."""
    import deepspeed

    torch.manual_seed(0)
    model = LRM(arch)
    cfg = TrainConfig(micro_batch_size=2, zero_stage=stage, lr=1e-3, warmup_steps=1, max_steps=10)
    opt = build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps)
    sched = build_scheduler(opt, cfg.max_steps, cfg.warmup_steps)
    config = build_deepspeed_config(cfg, 1, use_gpu=False)
    if partition_all:
        config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=sched, config=config)
    return engine, model


def _train(engine, batches):
    loss_fn = LossFn(LossConfig(mask=0.5))
    for batch in batches:
        out = forward_batch(engine, batch, torch.float32)
        loss, _ = loss_fn(out, batch)
        engine.backward(loss)
        engine.step()


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_zero_stage_checkpoint_resume_and_export(stage, process_group, batches, tmp_path):
    from lrm_dist.model.pretrained import from_pretrained

    engine, model = _engine(stage)
    _train(engine, batches[:2])
    save_checkpoint(engine, tmp_path / "step2", 0, {"step": 2, "batches": 2, "epoch": 0}, model.config.hf_dict())
    rng_after_save = torch.get_rng_state()
    _train(engine, batches[2:])
    save_checkpoint(engine, tmp_path / "straight", 0, {"step": 4, "batches": 4, "epoch": 0}, model.config.hf_dict())

    resumed, _ = _engine(stage)
    state = load_checkpoint(resumed, tmp_path / "step2", 0)
    assert state["step"] == 2 and state["batches"] == 2
    assert torch.equal(torch.get_rng_state(), rng_after_save)
    assert resumed.lr_scheduler.last_epoch == 2
    _train(resumed, batches[2:])
    save_checkpoint(resumed, tmp_path / "resumed", 0, {"step": 4, "batches": 4, "epoch": 0}, model.config.hf_dict())

    straight, again = consolidated_state_dict(tmp_path / "straight"), consolidated_state_dict(tmp_path / "resumed")
    initial = LRM(SIZES["tiny"]).state_dict()
    assert straight.keys() == initial.keys()
    assert not torch.equal(straight["pos_embed"], consolidated_state_dict(tmp_path / "step2")["pos_embed"])
    for key in straight:
        assert torch.equal(straight[key], again[key]), key

    exported = from_pretrained(export_checkpoint(tmp_path / "straight", tmp_path / "model"))
    for key, value in exported.state_dict().items():
        assert torch.equal(value, straight[key]), key


def test_zero3_runs_the_image_lift_with_its_gathered_weights(process_group, batches):
    """The fresh model (image lift, refiner, split-input cell layer) under ZeRO-3 with every parameter
    partitioned: the engine's forward equals the plain model's, and a step changes the lift's weights."""
    from lrm_dist.model.config import ModelConfig

    arch = ModelConfig(size="tiny").arch()
    assert arch.image_lift and arch.lift_refine
    engine, model = _engine(3, arch, partition_all=True)
    torch.manual_seed(0)
    plain = LRM(arch)
    batch = batches[0]
    with torch.no_grad():
        for module in (engine, plain):
            module.eval()
        got = forward_batch(engine, batch, torch.float32)
        want = forward_batch(plain, batch, torch.float32)
    assert {"planes", "rgb", "opacity", "depth"} <= got.keys()
    for key in ("planes", "rgb", "opacity", "depth"):
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-5, msg=key)
    engine.train()
    _train(engine, batches[:2])
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.lift.cell_mlp.parameters())):
        trained = model.lift.cell_mlp[0].weight.detach().clone()
    assert trained.shape == plain.lift.cell_mlp[0].weight.shape
    assert not torch.equal(trained, plain.lift.cell_mlp[0].weight)


@pytest.mark.parametrize("stage", [0, 2])
def test_optimizer_step_clips_and_reports_the_gradient_norm(stage, process_group, batches):
    from lrm_dist.train.deepspeed_config import loop_clips_gradients
    from lrm_dist.train.step import optimizer_step

    cfg = TrainConfig(micro_batch_size=2, zero_stage=stage, grad_clip=1e-3)
    loop_clips = loop_clips_gradients(cfg, use_gpu=False)
    assert loop_clips == (stage == 0)  # ZeRO-0 with fp32 weights: DeepSpeed clips without recording the norm
    assert build_deepspeed_config(cfg, 1, use_gpu=False)["gradient_clipping"] == (0.0 if loop_clips else 1e-3)
    engine, model = _engine(stage)  # the helper's config clips at 1.0
    out = forward_batch(engine, batches[0], torch.float32)
    engine.backward(LossFn(LossConfig(mask=0.5))(out, batches[0])[0])
    if stage == 0:
        seen = []
        engine.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: seen.append(torch.stack([p.grad.norm() for p in model.parameters()
                                                               if p.grad is not None]).norm().item()))
        before = torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm().item()
        norm = optimizer_step(engine, clip=1e-3)
        assert norm == pytest.approx(before, rel=1e-5) and before > 1e-3
        assert seen and seen[0] == pytest.approx(1e-3, rel=1e-3)  # the optimizer stepped on clipped gradients
    else:
        norm = optimizer_step(engine)  # ZeRO-2 clips and records the norm itself
        assert np.isfinite(norm) and norm > 0
