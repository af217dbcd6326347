"""The input contract and the recorded weights, for every registered token op.

Every op raises ValueError when N != H * W, takes non-contiguous tokens (what
``map_to_tokens`` returns) with the same result as contiguous ones, and, while a tool records,
computes the same output through its math path and hands over the weights it used.
"""

import pytest
import torch

from mmattn.analysis.ops import attention_ops, build_op, op_layout
from mmattn.models.attentions import BaseAttention, capture_attention
from mmattn.models.layers.tokens import map_to_tokens

TOKEN_OPS = [n for n, c in attention_ops().items() if op_layout(c) == 'tokens']


def _op(name):
    torch.manual_seed(0)
    return build_op(name, 32, 2).double()


@pytest.mark.parametrize('name', TOKEN_OPS)
def test_token_count_must_match_hw(name):
    op = _op(name)
    with pytest.raises(ValueError, match='H \\* W|tokens'):
        op(torch.randn(1, 10 * 12 + 1, 32, dtype=torch.float64), (10, 12))


@pytest.mark.parametrize('name', TOKEN_OPS)
def test_non_contiguous_tokens(name):
    op = _op(name)
    hw = (11, 13)
    img = torch.randn(2, 32, *hw, dtype=torch.float64)
    tokens = map_to_tokens(img)
    assert not tokens.is_contiguous()
    # and a view that no .view() can reshape: every other channel of a wider map
    wide = map_to_tokens(torch.randn(2, 64, *hw, dtype=torch.float64))[..., ::2]
    with torch.no_grad():
        torch.testing.assert_close(
            op(tokens, hw), op(tokens.contiguous(), hw), rtol=1e-12, atol=1e-12
        )
        torch.testing.assert_close(op(wide, hw), op(wide.contiguous(), hw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('name', TOKEN_OPS)
def test_recording_keeps_the_output_and_returns_weights(name):
    op = _op(name).eval()
    if not isinstance(op, BaseAttention):
        pytest.skip('not a BaseAttention: the tools fall back to saliency')
    hw = (10, 9)
    x = torch.randn(2, 90, 32, dtype=torch.float64)
    with torch.no_grad():
        ref = op(x, hw)
        with capture_attention(op) as records:
            out = op(x, hw)
        again = op(x, hw)
    assert records, f'{name} recorded nothing'
    assert op.attention_sink is None  # recording is off again
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(again, ref, rtol=0, atol=0)
    for rec in records:
        assert rec.weights.shape[0] == 2 and rec.weights.shape[2] == 90
        assert not rec.weights.requires_grad
        row = rec.row(17)
        assert torch.isfinite(row).all() and (row >= 0).all()
