"""The LRM end to end on the tiny config: shapes, gradients, determinism, patches, camera conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrm_dist.geometry.cameras import render_camera_features
from lrm_dist.model.lrm import LRM, split_render_cameras
from tests.model.conftest import render_cameras, source_camera


def test_forward_shapes_and_ranges(tiny: LRM):
    image = torch.rand(2, 3, 56, 56)
    c2w, k = render_cameras(2, [0.0, 120.0, 240.0])
    planes = tiny.forward_planes(image, source_camera(2))
    assert planes.shape == (2, 3, 8, 16, 16)
    out = tiny.render(planes, c2w, k, 24, 20)
    assert out["rgb"].shape == (2, 3, 3, 24, 20)
    assert out["opacity"].shape == out["depth"].shape == (2, 3, 1, 24, 20)
    assert 0 <= out["opacity"].min() and out["opacity"].max() <= 1
    assert -0.002 <= out["rgb"].min() and out["rgb"].max() <= 1.002
    assert torch.isfinite(out["depth"]).all()


def test_forward_takes_openlrm_render_cameras(tiny: LRM):
    c2w, k = render_cameras(1, [30.0, 200.0])
    full = np.array([k[0, 0, 0] * 32, k[0, 0, 1] * 32, k[0, 0, 2] * 32, k[0, 0, 3] * 32, 32, 32])
    feats = torch.tensor(render_camera_features(c2w[0].numpy(), np.tile(full, (2, 1))), dtype=torch.float32)[None]
    c2w_back, k_back = split_render_cameras(feats)
    torch.testing.assert_close(c2w_back, c2w)
    torch.testing.assert_close(k_back, k)
    image = torch.rand(1, 3, 56, 56)
    out = tiny(image, source_camera(1), feats, 16, 16)
    ref = tiny.render(tiny.forward_planes(image, source_camera(1)), c2w, k, 16, 16)
    torch.testing.assert_close(out["rgb"], ref["rgb"])


def test_gradients_reach_every_parameter(tiny: LRM):
    tiny.train()
    c2w, k = render_cameras(2, [10.0, 100.0])
    out = tiny(torch.rand(2, 3, 56, 56), source_camera(2), _features(c2w, k), 12, 12)
    loss = out["rgb"].mean() + out["opacity"].mean() + 0.1 * out["depth"].mean()
    loss.backward()
    dead = [n for n, p in tiny.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_gradient_checkpointing_gives_the_same_gradients(tiny: LRM):
    tiny.train()
    image, cam = torch.rand(1, 3, 56, 56), source_camera(1)
    tiny.forward_planes(image, cam).square().mean().backward()
    ref = {n: p.grad.clone() for n, p in tiny.named_parameters() if p.grad is not None}
    tiny.zero_grad()
    tiny.set_gradient_checkpointing(True)
    tiny.forward_planes(image, cam).square().mean().backward()
    for n, g in ref.items():
        torch.testing.assert_close(dict(tiny.named_parameters())[n].grad, g)


@pytest.mark.parametrize("lift", [False, True], ids=["triplanes", "lift+refiner"])
def test_compiled_blocks_keep_names_values_and_gradients(tiny: LRM, lift: bool):
    if lift:
        from lrm_dist.model.config import SIZES

        torch.manual_seed(0)
        tiny = LRM(SIZES["tiny"].model_copy(update={"image_lift": True, "lift_refine": True}))
        torch.nn.init.normal_(tiny.lift.refiner.out.weight, std=0.1)  # a trained refiner: its gradients flow back
    tiny.train()
    image, cam = torch.rand(1, 3, 56, 56), source_camera(1)
    names = list(tiny.state_dict())
    tiny.forward_planes(image, cam).square().mean().backward()
    ref = {n: p.grad.clone() for n, p in tiny.named_parameters() if p.grad is not None}
    planes = tiny.forward_planes(image, cam).detach()
    tiny.zero_grad()
    torch._dynamo.reset()
    tiny.compile_blocks(backend="aot_eager")  # the graphs and their autograd; inductor's kernels need a GPU to pay
    assert list(tiny.state_dict()) == names  # checkpoints and OpenLRM's keys are unchanged
    out = tiny.forward_planes(image, cam)
    torch.testing.assert_close(out.detach(), planes)
    out.square().mean().backward()
    for n, g in ref.items():
        torch.testing.assert_close(dict(tiny.named_parameters())[n].grad, g)
    assert all(block._compiled_call_impl is not None for block in tiny.transformer.layers)
    if lift:
        assert tiny.lift.refiner._compiled_call_impl is not None
        assert {"lift.cell_mlp.0.weight", "lift.refiner.enc0.0.weight"} <= ref.keys()  # compared above


def _features(c2w: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    kk = torch.zeros(*k.shape[:2], 9)
    kk[..., 0], kk[..., 4], kk[..., 2], kk[..., 5], kk[..., 8] = k[..., 0], k[..., 1], k[..., 2], k[..., 3], 1
    return torch.cat([c2w.flatten(-2), kk], dim=-1)


def test_same_seed_same_model_and_outputs():
    from lrm_dist.model.config import SIZES

    torch.manual_seed(3)
    a = LRM(SIZES["tiny"]).eval()
    torch.manual_seed(3)
    b = LRM(SIZES["tiny"]).eval()
    image = torch.rand(1, 3, 56, 56)
    c2w, k = render_cameras(1, [45.0])
    outs = [m.render(m.forward_planes(image, source_camera(1)), c2w, k, 16, 16)["rgb"] for m in (a, b, a)]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_jittered_sampling_is_random_but_seeded(tiny: LRM):
    planes = tiny.forward_planes(torch.rand(1, 3, 56, 56), source_camera(1))
    c2w, k = render_cameras(1, [0.0])
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(tiny.render(planes, c2w, k, 16, 16, jitter=True)["depth"])
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_patch_equals_crop_of_full_render(tiny: LRM):
    planes = tiny.forward_planes(torch.rand(2, 3, 56, 56), source_camera(2))
    c2w, k = render_cameras(2, [20.0, 160.0])
    full = tiny.render(planes, c2w, k, 32, 40)
    patch = tiny.render(planes, c2w, k, 32, 40, patch=(5, 11, 12, 9))
    for key in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(patch[key], full[key][..., 5:17, 11:20], atol=1e-5, rtol=1e-5)
    anchors = torch.tensor([[[0, 0], [20, 31]], [[3, 7], [10, 2]]])
    per_view = tiny.render(planes, c2w, k, 32, 40, patch=(anchors, 12, 9), chunk=50)
    for i in range(2):
        for j in range(2):
            y, x = anchors[i, j].tolist()
            torch.testing.assert_close(per_view["rgb"][i, j], full["rgb"][i, j, :, y : y + 12, x : x + 9], atol=1e-5, rtol=1e-5)


def test_bad_patch_and_inputs_are_rejected(tiny: LRM):
    planes = tiny.forward_planes(torch.rand(1, 3, 56, 56), source_camera(1))
    c2w, k = render_cameras(1, [0.0])
    with pytest.raises(ValueError, match="not inside"):
        tiny.render(planes, c2w, k, 16, 16, patch=(10, 0, 8, 8))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny.forward_planes(torch.rand(1, 3, 50, 50), source_camera(1))
    with pytest.raises(ValueError, match="source camera features"):
        tiny.forward_planes(torch.rand(1, 3, 56, 56), torch.zeros(1, 12))


def test_background_colour_fills_empty_space(tiny: LRM):
    planes = tiny.forward_planes(torch.rand(1, 3, 56, 56), source_camera(1))
    c2w, k = render_cameras(1, [0.0, 90.0])
    bg = torch.tensor([[[0.0, 0.5, 1.0], [1.0, 0.0, 0.0]]])
    black = tiny.render(planes, c2w, k, 8, 8, bg_color=0.0)
    coloured = tiny.render(planes, c2w, k, 8, 8, bg_color=bg)
    expected = black["rgb"] + (1 - black["opacity"]) * bg.view(1, 2, 3, 1, 1)
    torch.testing.assert_close(coloured["rgb"], expected)


def test_the_model_frame_is_saved_only_when_it_is_not_openlrms():
    from lrm_dist.model.config import LRMConfig

    assert "source_frame" not in LRMConfig().hf_dict()  # OpenLRM's configs load and save unchanged
    assert LRMConfig(source_frame="upright").hf_dict()["source_frame"] == "upright"
    with pytest.raises(ValueError, match="source_frame"):
        LRMConfig(source_frame="tilted")
