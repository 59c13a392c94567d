"""SplitInputLinear: the product of a concatenation that is never built."""

import pytest
import torch

from lrm_dist.model.split_linear import SplitInputLinear


def test_parts_give_the_linear_of_their_concatenation_values_and_gradients():
    torch.manual_seed(0)
    layer = SplitInputLinear(10, 4)
    per_point = torch.randn(2, 5, 6, requires_grad=True)
    per_item = torch.randn(2, 1, 3, requires_grad=True)
    shared = torch.randn(1, 5, 1)  # the same for every item, no gradient
    got = layer([(per_item, 6), (per_point, 0), (shared, 9)])  # any order: each part names its first column
    full = torch.cat([per_point, per_item.expand(-1, 5, -1), shared.expand(2, -1, -1)], -1)
    want = torch.nn.functional.linear(full, layer.weight, layer.bias)
    torch.testing.assert_close(got, want)
    grads = [torch.autograd.grad(y.sum(), [per_point, per_item, layer.weight, layer.bias]) for y in (got, want)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert list(layer.state_dict()) == ["weight", "bias"]  # nn.Linear's names: checkpoints do not change


@pytest.mark.parametrize("parts", [[(6, 0), (3, 6)], [(6, 0), (3, 7), (1, 9)], [(6, 0), (4, 5)], [(6, 1), (4, 7)]])
def test_parts_that_do_not_tile_the_columns_are_refused(parts):
    layer = SplitInputLinear(10, 4)
    with pytest.raises(ValueError, match="do not tile the 10 input columns"):
        layer([(torch.zeros(2, k), start) for k, start in parts])
