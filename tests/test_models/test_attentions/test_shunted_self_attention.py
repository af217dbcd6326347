"""Shunted self-attention against a naive per-head reference built from the paper's math."""

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.shunted_self_attention import ShuntedSelfAttention
from mmattn.registry import MODELS


def _layer_norm(t, norm):
    mu = t.mean(-1, keepdim=True)
    var = ((t - mu) ** 2).mean(-1, keepdim=True)
    return (t - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def naive_ssa(op, x, H, W):
    """Build every group's keys/values explicitly, then a plain softmax per head (loops)."""
    B, N, C = x.shape
    heads, d = op.num_heads, C // op.num_heads
    q = x @ op.q.weight.T + op.q.bias
    out = torch.zeros(B, N, C, dtype=x.dtype)
    x_map = x.transpose(1, 2).reshape(B, C, H, W)
    if op.sr_ratio == 1:
        kv = x @ op.kv.weight.T + op.kv.bias
        k, v = kv[..., :C], kv[..., C:]
        groups = [(list(range(heads)), k, v)]
        v_map = v.transpose(1, 2).reshape(B, C, H, W)
        lc = F.conv2d(v_map, op.local_conv.weight, op.local_conv.bias, padding=1, groups=C)
        post = lc.reshape(B, C, N).transpose(1, 2)
    else:
        groups = []
        half = heads // 2
        for g, (rate, sr, norm, kvl, lconv) in enumerate(
            (
                (op.sr_ratio, op.sr1, op.norm1, op.kv1, op.local_conv1),
                (op.sr_ratio // 2, op.sr2, op.norm2, op.kv2, op.local_conv2),
            )
        ):
            h, w = H // rate, W // rate  # floored aggregation
            # Aggregate each rate x rate patch explicitly: weighted sum over the cropped map.
            crop = x_map[:, :, : h * rate, : w * rate]
            patches = crop.reshape(B, C, h, rate, w, rate).permute(0, 2, 4, 1, 3, 5)
            red = torch.einsum('bijcuv,ocuv->bijo', patches, sr.weight) + sr.bias
            tok = F.gelu(_layer_norm(red.reshape(B, h * w, C), norm))
            kv = tok @ kvl.weight.T + kvl.bias
            k, v = kv[..., : C // 2], kv[..., C // 2 :]
            v_map = v.transpose(1, 2).reshape(B, C // 2, h, w)
            v = v + F.conv2d(v_map, lconv.weight, lconv.bias, padding=1, groups=C // 2).reshape(
                B, C // 2, h * w
            ).transpose(1, 2)
            groups.append((list(range(g * half, (g + 1) * half)), k, v))
        post = 0
    for head_ids, k, v in groups:
        for j, hid in enumerate(head_ids):
            qh = q[..., hid * d : (hid + 1) * d]
            kh, vh = k[..., j * d : (j + 1) * d], v[..., j * d : (j + 1) * d]
            logits = torch.einsum('bnd,bmd->bnm', qh, kh) * d**-0.5
            p = torch.exp(logits - logits.max(-1, keepdim=True).values)
            p = p / p.sum(-1, keepdim=True)
            out[..., hid * d : (hid + 1) * d] = torch.einsum('bnm,bmd->bnd', p, vh)
    out = out + post
    return out @ op.proj.weight.T + op.proj.bias


def _make(sr, dims=32, heads=4, **kw):
    torch.manual_seed(sr)
    op = ShuntedSelfAttention(dims, heads, sr_ratio=sr, **kw)
    op.init_weights()
    # Non-trivial norms / biases so the reference checks every term.
    for p in op.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return op.eval()


@pytest.mark.parametrize('sr', [1, 2, 4, 8])
@pytest.mark.parametrize('hw', [(16, 16), (17, 23), (9, 13)])
def test_matches_naive_reference(sr, hw):
    op = _make(sr)
    H, W = hw
    x = torch.randn(2, H * W, 32)
    ref = naive_ssa(op, x, H, W)
    for fused_attn in (True, False):
        op.fused_attn = fused_attn
        out = op(x, (H, W))
        assert out.shape == x.shape
        assert (out - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize('sr', [1, 6])
def test_fused_equals_math_and_general_rate(sr):
    op = _make(sr)
    x = torch.randn(1, 13 * 19, 32)
    fused = op(x, (13, 19))
    op.fused_attn = False
    math_out = op(x, (13, 19))
    torch.testing.assert_close(fused, math_out, atol=1e-5, rtol=1e-5)
    if sr == 6:  # a rate the official code does not have still matches the reference
        torch.testing.assert_close(math_out, naive_ssa(op, x, 13, 19), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('sr', [1, 4])
def test_gradients_reach_every_parameter(sr):
    op = _make(sr).train()
    x = torch.randn(2, 11 * 9, 32, requires_grad=True)
    op(x, (11, 9)).square().mean().backward()
    for name, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_bf16_autocast_no_nan():
    op = _make(4)
    x = torch.randn(2, 15 * 21, 32) * 10
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = op(x, (15, 21))
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize(
    'sr,heads,msg', [(3, 4, 'even'), (0, 4, '>= 1'), (2.0, 4, 'integer'), (4, 3, 'num_heads')]
)
def test_rejects_invalid_rates(sr, heads, msg):
    with pytest.raises(ValueError, match=msg):
        ShuntedSelfAttention(24, heads, sr_ratio=sr)


def test_rejects_map_smaller_than_rate_and_bad_shape():
    op = _make(8)
    with pytest.raises(ValueError, match='smaller than the aggregation rate'):
        op(torch.randn(1, 7 * 20, 32), (7, 20))
    with pytest.raises(ValueError, match='do not form'):
        op(torch.randn(1, 10, 32), (3, 4))


def test_registered_and_param_names():
    op = MODELS.build(dict(type='ShuntedSelfAttention', embed_dims=16, num_heads=2, sr_ratio=2))
    names = {n for n, _ in op.named_parameters()}
    assert {
        'q.weight',
        'kv1.weight',
        'kv2.weight',
        'sr1.weight',
        'sr2.weight',
        'local_conv1.weight',
        'local_conv2.weight',
        'proj.weight',
    } <= names
    assert op.sr2.kernel_size == (1, 1) and op.sr1.kernel_size == (2, 2)
