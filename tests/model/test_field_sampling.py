"""field_sampling.sample_grid: grid_sample's values, and a row-wise gradient equal to grid_sample's own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lrm_dist.model.field_sampling import sample_grid
from lrm_dist.model.synthesizer import sample_triplane, sample_volume


def _reference(source: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    b, m, d = coords.shape
    grid = coords.view(b, *([1] * (d - 1)), m, d)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(b, -1, m)


@pytest.mark.parametrize("spatial", [(5, 7), (4, 5, 6)])
def test_values_and_gradient_match_grid_sample(spatial):
    gen = torch.Generator().manual_seed(0)
    source = torch.randn(2, 3, *spatial, generator=gen, dtype=torch.float64, requires_grad=True)
    # points inside, on the border and outside the grid (zero padding), in [-1.3, 1.3]
    coords = (torch.rand(2, 200, len(spatial), generator=gen, dtype=torch.float64) * 2.6 - 1.3)
    upstream = torch.randn(2, 3, 200, generator=gen, dtype=torch.float64)

    out = sample_grid(source, coords)
    (grad,) = torch.autograd.grad((out * upstream).sum(), source)
    ref = _reference(source, coords)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), source)

    assert out.shape == (2, 3, 200)
    assert torch.equal(out, ref)
    assert grad.shape == source.shape and grad.abs().max() > 0.1
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


def test_row_gradient_is_the_adjoint_of_sampling():
    """gradcheck: the backward is the exact transpose of the (linear in source) forward."""
    gen = torch.Generator().manual_seed(1)
    source = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(1, 17, 2, generator=gen, dtype=torch.float64) * 2.4 - 1.2
    assert torch.autograd.gradcheck(lambda s: sample_grid(s, coords), (source,))


def test_triplane_and_volume_gradients_match_the_exact_path_under_float32():
    gen = torch.Generator().manual_seed(2)
    planes = torch.randn(2, 3, 8, 16, 16, generator=gen, requires_grad=True)
    volume = torch.randn(2, 8, 8, 8, 8, generator=gen, requires_grad=True)
    points = torch.rand(2, 500, 3, generator=gen) * 2.2 - 1.1
    grads = {}
    for exact in (False, True):
        feats = torch.cat([sample_triplane(planes, points, exact), sample_volume(volume, points, exact)], -1)
        grads[exact] = torch.autograd.grad((feats * torch.linspace(-1, 1, feats.shape[-1])).sum(), (planes, volume))
    for fast, ref in zip(grads[False], grads[True]):
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
        assert ref.abs().sum() > 1.0


def test_points_that_need_a_gradient_take_grid_samples_backward():
    source = torch.randn(1, 2, 4, 4, requires_grad=True)
    coords = (torch.rand(1, 9, 2) * 2 - 1).requires_grad_()
    (grad_coords,) = torch.autograd.grad(sample_grid(source, coords).sum(), coords)
    (ref_coords,) = torch.autograd.grad(_reference(source, coords).sum(), coords)
    torch.testing.assert_close(grad_coords, ref_coords)


@pytest.mark.gpu
@pytest.mark.parametrize("spatial", [(64, 64), (32, 32, 32)])
def test_cuda_row_gradient_matches_grid_sample(spatial):
    """On CUDA the backward is field_sampling_triton's kernel: the same gradient as grid_sample's (float32 sums)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gen = torch.Generator(device="cuda").manual_seed(3)
    source = torch.randn(6, 40, *spatial, device="cuda", generator=gen, requires_grad=True)  # C=40: a masked channel block
    coords = torch.rand(6, 5000, len(spatial), device="cuda", generator=gen) * 2.4 - 1.2
    upstream = torch.randn(6, 40, 5000, device="cuda", generator=gen)
    grads = [torch.autograd.grad((sample_grid(source, coords, exact) * upstream).sum(), source)[0] for exact in (False, True)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-4)
    # bf16 grids: the gradient comes back in bf16, summed in float32
    half = source.detach().bfloat16().requires_grad_()
    fast = torch.autograd.grad((sample_grid(half, coords) * upstream).sum(), half)[0]
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), grads[1], rtol=1e-2, atol=1e-2)


SCATTER_CHECK = """
import math, torch
from lrm_dist.model.field_sampling import _corners
from lrm_dist.model.field_sampling_triton import scatter_rows
device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: Triton's interpreter
gen = torch.Generator(device=device).manual_seed(4)
for spatial in ((9, 11), (5, 6, 7)):
    # C = 40: a masked channel block; points inside, on and outside the grid; a non-contiguous gradient
    coords = (torch.rand(6, 300, len(spatial), device=device, generator=gen) * 2.4 - 1.2).contiguous()
    grad = torch.randn(6, 300, 40, device=device, generator=gen).transpose(1, 2)
    out = scatter_rows(grad, coords, spatial)
    rows = grad.transpose(1, 2).reshape(-1, 40)
    ref = rows.new_zeros(6 * math.prod(spatial), 40)
    for index, weight in _corners(coords, tuple(reversed(spatial))):
        ref.index_add_(0, index, rows * weight[:, None])
    assert out.shape == (6, *spatial, 40), out.shape
    torch.testing.assert_close(out.view(-1, 40), ref, rtol=1e-5, atol=1e-5)
print("ok")
"""


def test_triton_scatter_matches_the_index_add_backward():
    """The Triton kernel against the index_add_ form of the same backward: on CUDA, or in Triton's CPU interpreter."""
    pytest.importorskip("triton")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, "-c", SCATTER_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
