"""map_to_tokens / tokens_to_map: values, round trip, and BatchNorm's gradient at batch size 1."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map


def test_same_values_as_flatten_transpose_and_round_trip():
    x = torch.randn(2, 5, 3, 7)
    tokens = map_to_tokens(x)
    assert torch.equal(tokens, x.flatten(2).transpose(1, 2))
    assert torch.equal(tokens_to_map(tokens, (3, 7)), x)


def test_tokens_to_map_names_a_wrong_size():
    with pytest.raises(ValueError, match='21 tokens cannot form a 4 x 5 map'):
        tokens_to_map(torch.zeros(1, 21, 2), (4, 5))


@pytest.mark.parametrize('training', [False, True])
def test_batchnorm_then_tokens_has_the_finite_difference_gradient_at_batch_one(training):
    """BN -> tokens -> LayerNorm, one image: autograd must agree with central differences.

    (With ``flatten(2).transpose(1, 2)`` in place of :func:`map_to_tokens`, torch 2.13 on CPU
    misses here by more than the gradient's own size.)
    """
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8).double().train(training)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
    x = torch.randn(1, 8, 5, 6, dtype=torch.float64)
    weight = torch.randn(1, 30, 8, dtype=torch.float64)

    def loss(inp):
        return (F.layer_norm(map_to_tokens(bn(inp)), (8,)) * weight).sum()

    xg = x.clone().requires_grad_()
    loss(xg).backward()
    direction = torch.randn_like(x)
    eps = 1e-6
    with torch.no_grad():
        momentum, bn.momentum = bn.momentum, 0.0  # keep running stats fixed in train mode
        numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
        bn.momentum = momentum
    assert (xg.grad * direction).sum().item() == pytest.approx(numeric.item(), rel=1e-6)


def test_wrong_ranks_name_the_expected_layout():
    with pytest.raises(ValueError, match=r'expected a \(B, C, H, W\) map, got shape \(2, 3\)'):
        map_to_tokens(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r'expected \(B, N, C\) tokens, got shape \(6, 2\)'):
        tokens_to_map(torch.zeros(6, 2), (2, 3))
