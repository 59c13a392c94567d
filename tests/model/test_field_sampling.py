"""field_sampling.sample_rows: grid_sample's values in the field's row layout, and grid_sample's gradient."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lrm_dist.model.field_sampling import sample_rows
from lrm_dist.model.synthesizer import sample_triplane, sample_volume


def _reference(source: torch.Tensor, coords: torch.Tensor, group: int = 1) -> torch.Tensor:
    b, m, d = coords.shape
    grid = coords.view(b, *([1] * (d - 1)), m, d)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(b, -1, m)
    return out.view(b // group, group, -1, m).permute(0, 3, 1, 2).reshape(b // group, m, -1)


@pytest.mark.parametrize("spatial,group", [((5, 7), 1), ((5, 7), 3), ((4, 5, 6), 1)])
def test_values_and_gradient_match_grid_sample(spatial, group):
    gen = torch.Generator().manual_seed(0)
    source = torch.randn(6, 3, *spatial, generator=gen, dtype=torch.float64, requires_grad=True)
    # points inside, on the border and outside the grid (zero padding), in [-1.3, 1.3]
    coords = torch.rand(6, 200, len(spatial), generator=gen, dtype=torch.float64) * 2.6 - 1.3
    upstream = torch.randn(6 // group, 200, 3 * group, generator=gen, dtype=torch.float64)

    out = sample_rows(source, coords, group)
    (grad,) = torch.autograd.grad((out * upstream).sum(), source)
    ref = _reference(source, coords, group)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), source)

    assert out.shape == (6 // group, 200, 3 * group)
    assert torch.equal(out, ref)
    assert grad.shape == source.shape and grad.abs().max() > 0.1
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


def test_row_gradient_is_the_adjoint_of_sampling():
    """gradcheck: the backward is the exact transpose of the (linear in source) forward."""
    gen = torch.Generator().manual_seed(1)
    source = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(1, 17, 2, generator=gen, dtype=torch.float64) * 2.4 - 1.2
    assert torch.autograd.gradcheck(lambda s: sample_rows(s, coords), (source,))


def test_triplane_and_volume_gradients_match_the_exact_path_under_float32():
    gen = torch.Generator().manual_seed(2)
    planes = torch.randn(2, 3, 8, 16, 16, generator=gen, requires_grad=True)
    volume = torch.randn(2, 8, 8, 8, 8, generator=gen, requires_grad=True)
    points = torch.rand(2, 500, 3, generator=gen) * 2.2 - 1.1
    grads = {}
    for exact in (False, True):
        feats = torch.cat([sample_triplane(planes, points, exact), sample_volume(volume, points, exact)], -1)
        assert feats.shape == (2, 500, 32) and feats.dtype == torch.float32
        grads[exact] = torch.autograd.grad((feats * torch.linspace(-1, 1, feats.shape[-1])).sum(), (planes, volume))
    for fast, ref in zip(grads[False], grads[True]):
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
        assert ref.abs().sum() > 1.0


def test_points_that_need_a_gradient_take_grid_samples_backward():
    source = torch.randn(1, 2, 4, 4, requires_grad=True)
    coords = (torch.rand(1, 9, 2) * 2 - 1).requires_grad_()
    (grad_coords,) = torch.autograd.grad(sample_rows(source, coords).sum(), coords)
    (ref_coords,) = torch.autograd.grad(_reference(source, coords).sum(), coords)
    torch.testing.assert_close(grad_coords, ref_coords)


TRITON_CHECK = """
import torch
from lrm_dist.model.field_sampling import _TritonRows
from tests.model.test_field_sampling import _reference
device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: Triton's interpreter
gen = torch.Generator(device=device).manual_seed(3)
for spatial, group in (((9, 11), 3), ((5, 6, 7), 1)):
    # C = 40: a masked channel block; points inside, on and outside the grid
    source = torch.randn(6, 40, *spatial, device=device, generator=gen, requires_grad=True)
    coords = torch.rand(6, 300, len(spatial), device=device, generator=gen) * 2.4 - 1.2
    upstream = torch.randn(6 // group, 300, 40 * group, device=device, generator=gen)
    out = _TritonRows.apply(source, coords, group)
    ref = _reference(source, coords, group)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grads = [torch.autograd.grad((o * upstream).sum(), source)[0] for o in (out, ref)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-4)
    # bf16 grids under autocast: rows come out in bf16, the gradient goes back in bf16, summed in float32
    half = source.detach().bfloat16().requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        rows = _TritonRows.apply(half, coords, group)
    assert rows.dtype == torch.bfloat16
    torch.testing.assert_close(rows.float(), ref.detach(), rtol=1e-2, atol=2e-2)
    fast = torch.autograd.grad((rows.float() * upstream).sum(), half)[0]
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), grads[1], rtol=1e-2, atol=5e-2)
print("ok")
"""


def test_triton_rows_match_grid_sample():
    """The Triton kernels against grid_sample, values and gradients, on CUDA or in Triton's CPU interpreter."""
    pytest.importorskip("triton")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, "-c", TRITON_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
