"""SpatialReductionAttention (PVT v1) against a per-head float64 reference."""

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.spatial_reduction_attention import SpatialReductionAttention


def reference(op, x, hw):
    b, n, c = x.shape
    h, w = hw
    x = x.double()
    q = x @ op.q.weight.double().T + op.q.bias.double()
    src = x
    if op.sr_ratio > 1:
        img = x.transpose(1, 2).reshape(b, c, h, w)
        img = F.conv2d(img, op.sr.weight.double(), op.sr.bias.double(), stride=op.sr_ratio)
        src = F.layer_norm(
            img.flatten(2).transpose(1, 2),
            (c,),
            op.norm.weight.double(),
            op.norm.bias.double(),
            op.norm.eps,
        )
    kv = src @ op.kv.weight.double().T + op.kv.bias.double()
    k, v = kv[..., :c], kv[..., c:]
    d = c // op.num_heads
    out = torch.zeros_like(q)
    for hd in range(op.num_heads):
        sl = slice(hd * d, (hd + 1) * d)
        attn = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) * d**-0.5, -1)
        out[..., sl] = attn @ v[..., sl]
    return out @ op.proj.weight.double().T + op.proj.bias.double()


@pytest.mark.parametrize('sr_ratio', [1, 2, 4])
@pytest.mark.parametrize('hw', [(8, 8), (13, 10)])
@pytest.mark.parametrize('fused', [True, False])
def test_matches_reference(sr_ratio, hw, fused):
    torch.manual_seed(0)
    op = SpatialReductionAttention(16, 2, sr_ratio=sr_ratio, fused_attn=fused).eval()
    x = torch.randn(2, hw[0] * hw[1], 16)
    with torch.no_grad():
        out = op(x, hw)
    assert out.shape == x.shape
    assert (out.double() - reference(op, x, hw)).abs().max() <= 1e-5


def test_gradients_and_autocast():
    op = SpatialReductionAttention(16, 2, sr_ratio=2).train()
    x = torch.randn(2, 9 * 7, 16, requires_grad=True)
    op(x, (9, 7)).sum().backward()
    assert all(p.grad is not None for p in op.parameters())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.isfinite(op(x * 10, (9, 7)).float()).all()
