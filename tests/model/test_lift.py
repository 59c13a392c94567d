"""The image lift: projection through the source camera, plane layout, and OpenLRM compatibility when off."""

import numpy as np
import pytest
import torch

from lrm_dist.geometry.cameras import camera_features, look_at_c2w
from lrm_dist.model.config import SIZES, LRMConfig, ModelConfig
from lrm_dist.geometry.occupancy import cell_centres
from lrm_dist.model.lift import ImageLift, pack, project_points, unpack
from lrm_dist.model.lrm import LRM
from lrm_dist.model.synthesizer import sample_triplane, sample_volume


def _source_camera(distance=2.5, focal=100.0, size=200):
    c2w = look_at_c2w(np.array([0.0, -distance, 0.0]))  # the canonical source pose
    return torch.tensor(camera_features(c2w, np.array([focal, focal, size / 2, size / 2, size, size])),
                        dtype=torch.float32)[None]


def test_project_points_matches_the_pinhole_model():
    cam = _source_camera()
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.25], [0.0, 1.0, -0.5]]])
    coords, depth = project_points(points, cam)
    assert depth[0].tolist() == pytest.approx([2.5, 2.5, 3.5])
    # u = cx + f x / d (pixels); x right, z up -> row up
    u = np.array([100, 100 + 100 * 0.5 / 2.5, 100]) / 200
    v = np.array([100, 100 - 100 * 0.25 / 2.5, 100 + 100 * 0.5 / 3.5]) / 200
    assert coords[0, :, 0].tolist() == pytest.approx((2 * u - 1).tolist(), abs=1e-6)
    assert coords[0, :, 1].tolist() == pytest.approx((2 * v - 1).tolist(), abs=1e-6)


def test_volume_layout_and_packing():
    """With cell features = the cell's position, the field reads each point's own position back."""
    lift = ImageLift(feature_dim=3, resolution=8, width=8)
    first, _, last = lift.cell_mlp  # hidden unit i = x_i + 10 (GELU is the identity there), output i = unit i - 10
    position = first.in_features - 3 * (1 + 2 * lift.frequencies)  # the position code starts with x, y, z
    with torch.no_grad():
        for layer in (first, last):
            layer.weight.zero_()
            layer.bias.zero_()
        for i in range(3):
            first.weight[i, position + i], first.bias[i] = 1.0, 10.0
            last.weight[i, i], last.bias[i] = 1.0, -10.0
    volume, layers = lift(torch.rand(2, 3, 28, 28), _source_camera().expand(2, -1))
    assert volume.shape == (2, 3, 8, 8, 8) and layers.shape == (2, 2, 14, 14)
    assert (layers[:, :1] > 0).all() and (layers[:, 1:] >= layers[:, :1]).all()  # the back is never before the front
    point = torch.tensor([[[0.375, -0.625, 0.125]]]).expand(2, 1, 3)  # a cell centre of the 8^3 grid
    assert sample_volume(volume, point)[0, 0].tolist() == pytest.approx([0.375, -0.625, 0.125], abs=1e-6)
    planes = torch.randn(2, 3, 3, 8, 8)
    packed = pack(planes, volume)
    assert packed.shape == (2, 11, 3, 8, 8)
    back_planes, back_volume = unpack(packed)
    assert torch.equal(back_planes, planes) and torch.equal(back_volume, volume)
    assert unpack(planes)[1] is None
    assert torch.equal(sample_triplane(packed, point), sample_triplane(planes, point))


def test_cell_features_equal_the_mlp_of_the_concatenated_inputs():
    """The per-cell MLP reads its parts without concatenating them: the same values and gradients as the
    MLP of each cell's inputs concatenated in their documented order."""
    torch.manual_seed(0)
    lift = ImageLift(feature_dim=8, resolution=8, width=16)
    n, p, w = 2, 512, 16
    features = torch.randn(n, w, 7, 7, requires_grad=True)
    sampled = torch.randn(n, w, p, requires_grad=True)
    pixels, coords = torch.rand(n, 3, p), torch.rand(n, p, 2) * 2.4 - 1.2
    layers = torch.rand(n, 2, p, requires_grad=True)
    depth = torch.rand(n, p) * 2 + 1
    points = lift.cell_points[:, :p].expand(n, -1, -1)

    def reference():
        inside = ((coords.abs() <= 1).all(-1) & (depth > 0)).float()
        behind, before = depth - layers[:, 0], layers[:, 0] + layers[:, 1] - depth
        between = torch.sigmoid(behind / 0.03) * torch.sigmoid(before / 0.03)
        context = lift.context(torch.cat([features.mean((2, 3)), features.amax((2, 3))], -1))
        cell = torch.cat([sampled.transpose(1, 2), context.unsqueeze(1).expand(-1, p, -1), pixels.transpose(1, 2),
                          inside.unsqueeze(-1), (depth - depth.mean(1, keepdim=True)).unsqueeze(-1),
                          torch.stack([behind, before, between], -1),
                          torch.cat([points, *(f(points.unsqueeze(-1) * torch.pi * 2.0 ** torch.arange(2)).flatten(-2)
                                               for f in (torch.sin, torch.cos))], -1)], -1)
        first, act, last = lift.cell_mlp
        return last(act(torch.nn.functional.linear(cell, first.weight, first.bias)))

    outputs = []
    for compute in (reference, lambda: lift._cells(features, sampled, pixels, layers, coords, depth, points)):
        out = compute()
        grads = torch.autograd.grad(out.square().sum(), [features, sampled, layers, *lift.parameters()],
                                    allow_unused=True)
        outputs.append((out, grads))
    (ref, ref_grads), (got, got_grads) = outputs
    assert got.shape == (n, p, 8)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(got_grads, ref_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_lift_makes_planes_depend_on_the_image():
    torch.manual_seed(0)
    # tiny's conv encoder has local features, so the change stays where it is seen (the U-Net's reach everywhere)
    model = LRM(ModelConfig(size="tiny").arch()).eval()
    cam = _source_camera(focal=30.0, size=56)
    white, dark = torch.ones(1, 3, 56, 56), torch.ones(1, 3, 56, 56)
    dark[..., 18:38, 18:38] = 0.2
    with torch.no_grad():
        (p_white, v_white), (p_dark, v_dark) = (unpack(model.forward_planes(x, cam)) for x in (white, dark))
    diff = (v_white - v_dark).abs().mean(1)[0]  # [z, y, x] per cell
    centres = torch.from_numpy(cell_centres(16)).float().permute(2, 1, 0, 3).reshape(1, -1, 3)
    coords, _ = project_points(centres, cam)
    pixel = ((coords[0] + 1) / 2 * 56).view(16, 16, 16, 2)
    in_square = ((pixel >= 19) & (pixel < 37)).all(-1)
    # cells that see the changed pixels change most: the lift is pixel-aligned from the first step
    assert float(diff[in_square].mean()) > 2 * float(diff[~in_square].mean())


def test_openlrm_architecture_has_no_lift_keys():
    assert not SIZES["small"].image_lift and "image_lift" not in SIZES["small"].hf_dict()
    with torch.device("meta"):
        keys = LRM(SIZES["small"]).state_dict().keys()
    assert not any(k.startswith("lift.") for k in keys)
    fresh = ModelConfig(size="tiny", architecture={"triplane_low_res": 4, "triplane_high_res": 8}).arch()
    assert fresh.image_lift and fresh.triplane_high_res == 8
    with pytest.raises(ValueError, match="model.architecture"):
        ModelConfig(architecture={"no_such_key": 1}).arch()
    assert LRMConfig(iso_level=1.5).surface_level() == 1.5 and LRMConfig().surface_level() == 3.0


def test_meshing_grid_reads_the_volume_like_the_field():
    """serve.mesh.density_grid's factorised query equals the synthesizer's own density, lift included."""
    from lrm_dist.reconstruct.extract import density_grid

    torch.manual_seed(0)
    model = LRM(ModelConfig(size="tiny").arch()).eval()
    with torch.no_grad():
        planes = model.forward_planes(torch.rand(1, 3, 56, 56), _source_camera(focal=30.0, size=56))
        grid = density_grid(model.synthesizer, planes[0], 9, chunk=2 * 81)  # several slabs
        c = torch.linspace(-1, 1, 9)
        points = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).view(1, -1, 3)
        direct = model.synthesizer.density(planes, points).view(9, 9, 9)
        without = model.synthesizer.density(planes[:, :3], points).view(9, 9, 9)
    assert torch.allclose(grid, direct, atol=1e-5)
    assert not torch.allclose(direct, without, atol=1e-3)  # the volume term is really in there


def test_layers_only_pass_is_the_full_pass_layers_and_trains_only_the_2d_part():
    """LRM.forward(layers_only=True) gives the same depth layers as the full pass, and its gradient reaches only
    the lift's image encoder and layer head (the warm-up of train.lift_warmup_steps)."""
    torch.manual_seed(0)
    model = LRM(ModelConfig(size="tiny").arch())
    image, cam = torch.rand(2, 3, 56, 56), _source_camera(focal=30.0, size=56).expand(2, -1)
    only = model(image, cam, None, 0, 0, layers_only=True)
    assert set(only) == {"source_front_depth", "source_back_depth"}
    full_layers = model._planes(image, cam)[1]
    assert torch.allclose(only["source_front_depth"], full_layers[:, :1]) and torch.allclose(only["source_back_depth"], full_layers[:, 1:])
    (only["source_front_depth"].sum() + only["source_back_depth"].sum()).backward()
    touched = {name.split(".")[1] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched == {"cnn", "layers"} and all(name.startswith("lift.") for name, p in model.named_parameters()
                                               if p.grad is not None and p.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match="image lift"):
        LRM(ModelConfig(size="tiny", image_lift=False).arch())(image, cam, None, 0, 0, layers_only=True)


@pytest.mark.parametrize("resolution", [12, 5])
def test_a_volume_of_another_side_packs_and_unpacks_exactly(resolution):
    """lift_resolution: a volume finer (or coarser) than the planes travels flattened behind them, the interval after it."""
    from lrm_dist.model.lift import unpack_interval, volume_slices

    planes, volume = torch.randn(2, 3, 4, 8, 8), torch.randn(2, 4, resolution, resolution, resolution)
    layers, camera = torch.rand(2, 2, 3, 3), torch.randn(2, 16)
    packed = pack(planes, volume, (layers, camera))
    assert packed.shape[1] == 3 + volume_slices(8, resolution) + 1
    back_planes, back_volume = unpack(packed, resolution)
    assert torch.equal(back_planes, planes) and torch.equal(back_volume, volume)
    back_layers, back_camera = unpack_interval(packed, 3, resolution)
    assert torch.equal(back_layers, layers) and torch.equal(back_camera, camera)


def test_a_finer_lift_volume_is_what_the_field_reads():
    """model.architecture.lift_resolution: the lift builds a finer grid, the field and the meshing grid read it."""
    from lrm_dist.reconstruct.extract import density_grid

    torch.manual_seed(0)
    config = ModelConfig(size="tiny", architecture={"lift_resolution": 24}).arch()
    assert config.resolved_lift_resolution() == 24 and config.hf_dict()["lift_resolution"] == 24
    model = LRM(config).eval()
    assert model.lift.cell_points.shape[1] == 24**3
    with torch.no_grad():
        planes = model.forward_planes(torch.rand(1, 3, 56, 56), _source_camera(focal=30.0, size=56))
        _, volume = unpack(planes, 24)
        assert volume.shape == (1, config.triplane_dim, 24, 24, 24)
        point = torch.tensor([[[-0.375, 0.125, 0.625]]])  # a cell centre of the 24^3 grid: the field reads that cell
        cell = volume[0, :, 19, 13, 7]  # z, y, x = (0.625, 0.125, -0.375): -1 + (i + 0.5) / 12
        assert sample_volume(volume, point)[0, 0].tolist() == pytest.approx(cell.tolist(), abs=1e-5)
        c = torch.linspace(-1, 1, 7)
        points = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).view(1, -1, 3)
        direct = model.synthesizer.density(planes, points).view(7, 7, 7)
        assert torch.allclose(density_grid(model.synthesizer, planes[0], 7), direct, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 4"):
        LRMConfig(image_lift=True, lift_refine=True, lift_resolution=30)
    with pytest.raises(ValueError, match="needs image_lift"):
        LRMConfig(lift_resolution=32)
