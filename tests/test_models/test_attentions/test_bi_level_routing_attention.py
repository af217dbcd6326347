"""Bi-Level Routing Attention against an independent dense reference.

The reference computes full softmax attention over every (padded) token with an additive
mask that blocks each key outside its query's routed regions, plus the same LePE: the math
of BRA without regions-as-batches, gathers or loops.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.bi_level_routing_attention import (
    BiLevelRoutingAttention,
    GlobalAttentionLePE,
)
from mmattn.registry import build_module


def dense_bra_reference(op, x, hw_shape):
    """Masked dense attention with the op's weights; legacy zero padding before qkv."""
    b, n, c = x.shape
    h, w = hw_shape
    s, qk = op.n_win, op.qk_dims
    rh, rw = math.ceil(h / s), math.ceil(w / s)
    hp, wp = rh * s, rw * s
    xm = torch.zeros(b, hp, wp, c, dtype=x.dtype)
    xm[:, :h, :w] = x.view(b, h, w, c)
    qkv = F.linear(xm, op.qkv.weight, op.qkv.bias)
    q, k, v = qkv[..., :qk], qkv[..., qk : 2 * qk], qkv[..., 2 * qk :]
    # region means by average pooling over each rh x rw block
    q_mean = F.avg_pool2d(q.permute(0, 3, 1, 2), (rh, rw)).flatten(2).transpose(1, 2)
    k_mean = F.avg_pool2d(k.permute(0, 3, 1, 2), (rh, rw)).flatten(2).transpose(1, 2)
    scale = qk**-0.5
    affinity = (q_mean * scale) @ k_mean.transpose(1, 2)  # (B, P, P)
    kk = min(op.topk, s * s)
    routed = torch.zeros_like(affinity, dtype=torch.bool)
    routed.scatter_(-1, affinity.topk(kk, dim=-1).indices, True)
    # region id of every token of the padded map, raster order
    rows = torch.arange(hp).div(rh, rounding_mode='floor')
    cols = torch.arange(wp).div(rw, rounding_mode='floor')
    region = (rows[:, None] * s + cols[None, :]).flatten()  # (Np,)
    allowed = routed[:, region][:, :, region]  # (B, Np, Np)
    bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill(~allowed, float('-inf'))

    m = op.num_heads
    npad = hp * wp
    qh = q.reshape(b, npad, m, -1).transpose(1, 2)
    kh = k.reshape(b, npad, m, -1).transpose(1, 2)
    vh = v.reshape(b, npad, m, -1).transpose(1, 2)
    attn = (scale * qh @ kh.transpose(-2, -1) + bias[:, None]).softmax(-1)
    out = (attn @ vh).transpose(1, 2).reshape(b, hp, wp, c)
    lepe = F.conv2d(
        v.permute(0, 3, 1, 2), op.lepe.weight, op.lepe.bias, padding=op.lepe.padding, groups=c
    ).permute(0, 2, 3, 1)
    out = (out + lepe)[:, :h, :w].reshape(b, n, c)
    return F.linear(out, op.proj.weight, op.proj.bias)


CASES = [  # n_win, topk, H, W
    (2, 1, 8, 8),
    (4, 3, 8, 12),
    (3, 2, 7, 10),  # padded: 7 -> 9, 10 -> 12
    (4, 5, 13, 9),  # padded both sides, region 4x3
    (7, 4, 14, 14),
    (2, 9, 5, 6),  # topk > regions: clamped to all 4 regions
]


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('n_win,topk,h,w', CASES)
def test_bra_equals_masked_dense_reference(n_win, topk, h, w, fused):
    torch.manual_seed(0)
    op = BiLevelRoutingAttention(
        24, num_heads=3, n_win=n_win, topk=topk, qk_dims=12, fused_attn=fused
    ).eval()
    # non-trivial biases so that padded tokens (q = k = v = bias) matter
    torch.nn.init.normal_(op.qkv.bias, std=0.5)
    x = torch.randn(2, h * w, 24)
    with torch.no_grad():
        out = op(x, (h, w))
        ref = dense_bra_reference(op, x, (h, w))
    assert out.shape == x.shape
    assert (out - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('n_win,h,w', [(16, 10, 12), (3, 5, 9), (4, 13, 7), (2, 8, 8)])
def test_export_path_equals_eager(n_win, h, w, fused, monkeypatch):
    """The export path (regions gathered by index, no reshape that torch.export bounds at
    region size 1) gives the eager op's values bitwise in float64, padded or not. The output
    projection is left out: the same Linear on the same values, which BLAS may round 1 ulp
    apart for a different memory layout."""
    torch.manual_seed(0)
    op = BiLevelRoutingAttention(16, 2, n_win=n_win, topk=3, fused_attn=fused).double().eval()
    torch.nn.init.normal_(op.qkv.bias, std=0.5)
    op.proj = torch.nn.Identity()
    x = torch.randn(2, h * w, 16, dtype=torch.float64)
    with torch.no_grad():
        ref = op(x, (h, w))
        monkeypatch.setattr(torch.compiler, 'is_exporting', lambda: True)
        got = op(x, (h, w))
    assert torch.equal(got, ref)


def test_auto_pad_equals_explicit_zero_padding():
    """Legacy auto_pad semantics: padding the op input with zero tokens to a multiple of n_win
    and cropping the output is what the op does for any H, W."""
    torch.manual_seed(0)
    op = BiLevelRoutingAttention(16, num_heads=2, n_win=2, topk=4).eval()
    torch.nn.init.normal_(op.qkv.bias, std=1.0)
    x = torch.randn(1, 5 * 6, 16)
    with torch.no_grad():
        out = op(x, (5, 6))
        ref = dense_bra_reference(op, x, (5, 6))
        op2 = BiLevelRoutingAttention(16, num_heads=2, n_win=2, topk=4).eval()
        op2.load_state_dict(op.state_dict())
        x6 = torch.cat([x.view(1, 5, 6, 16), torch.zeros(1, 1, 6, 16)], 1).view(1, 36, 16)
        out6 = op2(x6, (6, 6)).view(1, 6, 6, 16)[:, :5].reshape(1, 30, 16)
    assert (out - ref).abs().max() <= 1e-5
    # explicit padding of the input to 6x6 is the same as auto padding
    assert (out - out6).abs().max() <= 1e-5


def test_scale_uses_full_qk_dims():
    op = BiLevelRoutingAttention(64, num_heads=2, qk_dims=32)
    assert op.scale == pytest.approx(32**-0.5)


def test_lean_and_fused_paths_agree_with_grad():
    torch.manual_seed(0)
    lean = BiLevelRoutingAttention(16, num_heads=2, n_win=3, topk=2)
    fused = BiLevelRoutingAttention(16, num_heads=2, n_win=3, topk=2, fused_attn=True)
    fused.load_state_dict(lean.state_dict())
    x = torch.randn(2, 11 * 7, 16, requires_grad=True)
    out_l = lean(x, (11, 7))
    out_l.square().sum().backward()
    g_l = x.grad.clone()
    x.grad = None
    out_f = fused(x, (11, 7))
    out_f.square().sum().backward()
    assert (out_l - out_f).abs().max() <= 1e-5
    assert (g_l - x.grad).abs().max() <= 1e-4
    for (name, p_l), p_f in zip(lean.named_parameters(), fused.parameters()):
        assert (p_l.grad - p_f.grad).abs().max() <= 1e-4, name


def test_default_path_follows_the_device(monkeypatch):
    """fused_attn=None: the lean loop on CPU (an explicit True/False always wins)."""
    calls = []
    real_fused = BiLevelRoutingAttention._attend_fused
    monkeypatch.setattr(
        BiLevelRoutingAttention,
        '_attend_fused',
        lambda self, *a: calls.append('fused') or real_fused(self, *a),
    )
    x = torch.randn(1, 6 * 6, 16)
    BiLevelRoutingAttention(16, num_heads=2, n_win=2, topk=2)(x, (6, 6))
    assert calls == []
    BiLevelRoutingAttention(16, num_heads=2, n_win=2, topk=2, fused_attn=True)(x, (6, 6))
    assert calls == ['fused']


def test_region_gather_equals_indexing_with_gradient():
    """index_select over B*P picks the same regions (and routes the same gradient) as
    indexing region by region."""
    torch.manual_seed(0)
    op = BiLevelRoutingAttention(16, num_heads=2, n_win=2, topk=2)
    # a transposed view, as the op passes it
    t = torch.randn(3, 5, 4, 2, 6).transpose(2, 3).requires_grad_()
    idx = torch.randint(0, 5, (3, 5, 2))
    got = op._gather(t, idx)
    want = torch.stack([torch.stack([t[b, idx[b, p]] for p in range(5)]) for b in range(3)])
    assert got.shape == want.shape == (3, 5, 2, 2, 4, 6)
    assert torch.equal(got, want)
    g = torch.randn_like(got)
    (g_got,), (g_want,) = (torch.autograd.grad(o, t, g) for o in (got, want))
    torch.testing.assert_close(g_got, g_want)


def test_every_parameter_gets_gradient_and_routing_has_none():
    torch.manual_seed(0)
    op = build_module(
        dict(type='BiLevelRoutingAttention', embed_dims=16, num_heads=2, n_win=2, topk=2)
    )
    x = torch.randn(1, 6 * 5, 16, requires_grad=True)
    op(x, (6, 5)).sum().backward()
    for name, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    q_r = torch.randn(1, 4, 3, 16, requires_grad=True)
    weights, idx = op.route(q_r, q_r * 2)
    assert not weights.requires_grad and idx.shape == (1, 4, 2)


def test_soft_routing_options():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match='soft_routing'):
        BiLevelRoutingAttention(16, num_heads=2, diff_routing=True)
    op = BiLevelRoutingAttention(
        16, num_heads=2, n_win=2, topk=2, soft_routing=True, diff_routing=True
    )
    x = torch.randn(1, 16, 16)
    weights, _ = op.route(*(torch.randn(1, 4, 4, 16, requires_grad=True),) * 2)
    assert weights.requires_grad
    fused = BiLevelRoutingAttention(
        16, num_heads=2, n_win=2, topk=2, soft_routing=True, fused_attn=True
    )
    fused.load_state_dict(op.state_dict())
    assert (op(x, (4, 4)) - fused(x, (4, 4))).abs().max() <= 1e-5


@pytest.mark.parametrize('hw', [(7, 7), (9, 13)])
def test_bra_bf16_autocast_no_nan(hw):
    torch.manual_seed(0)
    op = BiLevelRoutingAttention(32, num_heads=2, n_win=4, topk=3)
    x = torch.randn(2, hw[0] * hw[1], 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = op(x, hw)
    assert out.shape == x.shape and torch.isfinite(out.float()).all()


def global_reference(op, x, hw_shape, num_heads):
    b, n, c = x.shape
    h, w = hw_shape
    q, k, v = F.linear(x, op.qkv.weight).chunk(3, dim=-1)
    outs = []
    for i in range(num_heads):  # heads one by one
        sl = slice(i * c // num_heads, (i + 1) * c // num_heads)
        a = (q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(c // num_heads)).softmax(-1)
        outs.append(a @ v[..., sl])
    lepe = F.conv2d(
        x.transpose(1, 2).reshape(b, c, h, w), op.lepe.weight, op.lepe.bias, padding=2, groups=c
    )  # LePE on the op input x, as the official code
    out = torch.cat(outs, -1) + lepe.flatten(2).transpose(1, 2)
    return F.linear(out, op.proj.weight, op.proj.bias)


@pytest.mark.parametrize('fused', [True, False])
def test_global_attention_lepe_reference(fused):
    torch.manual_seed(0)
    op = GlobalAttentionLePE(64, fused_attn=fused).eval()
    assert op.num_heads == 8 and op.qkv.bias is None  # the official default the models use
    x = torch.randn(2, 5 * 3, 64)
    with torch.no_grad():
        out = op(x, (5, 3))
    assert (out - global_reference(op, x, (5, 3), 8)).abs().max() <= 1e-5
    assert out.shape == x.shape
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.isfinite(op(x, (5, 3)).float()).all()
