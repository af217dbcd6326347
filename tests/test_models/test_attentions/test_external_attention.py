"""External attention (both forms) against naive implementations written from the formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.external_attention import (
    ExternalAttention,
    ExternalAttentionBlock,
    MultiHeadExternalAttention,
)
from mmattn.registry import MODELS, build_module


def _naive_double_norm(logits_ns):
    """(N, S) logits -> explicit softmax over N (per slot), then explicit L1 over S (per n)."""
    N, S = logits_ns.shape
    out = torch.empty_like(logits_ns, dtype=torch.float64)
    lg = logits_ns.double()
    for s in range(S):
        col = lg[:, s]
        e = torch.exp(col - col.max())
        out[:, s] = e / e.sum()
    for n in range(N):
        out[n] = out[n] / (1e-9 + out[n].abs().sum())
    return out


def _naive_single_head(m, x):
    """The EANet module written out per image from the formulas, in float64."""
    B, C, H, W = x.shape
    D = m.conv_in.out_channels  # C / reduction
    mk = m.mem_k.weight[:, :, 0].double()  # (S, D)
    mv = m.mem_v.weight[:, :, 0].double()  # (D, S)
    y = torch.empty(B, C, H, W, dtype=torch.float64)
    for b in range(B):
        feat = (
            F.conv2d(x[b : b + 1].double(), m.conv_in.weight.double(), m.conv_in.bias.double())[0]
            .reshape(D, H * W)
            .T
        )  # (N, D)
        attn = _naive_double_norm(feat @ mk.T)  # (N, S)
        out = (attn @ mv.T).T.reshape(1, D, H, W)  # (1, D, H, W)
        out = F.conv2d(out, m.conv_out.weight.double())
        bn = m.norm
        out = (out - bn.running_mean.double().view(1, -1, 1, 1)) / torch.sqrt(
            bn.running_var.double().view(1, -1, 1, 1) + bn.eps
        )
        out = out * bn.weight.double().view(1, -1, 1, 1) + bn.bias.double().view(1, -1, 1, 1)
        y[b] = torch.relu(out[0] + x[b].double())
    return y


def _naive_multi_head(m, x):
    B, N, C = x.shape
    heads, hd = m.num_heads, m.head_dims
    t = x.double() @ m.trans_dims.weight.double().T + m.trans_dims.bias.double()
    outs = []
    for b in range(B):
        per_head = []
        for h in range(heads):
            xh = t[b, :, h * hd : (h + 1) * hd]  # (N, hd)
            logits = xh @ m.mem_k.weight.double().T + m.mem_k.bias.double()
            attn = _naive_double_norm(logits)
            per_head.append(attn @ m.mem_v.weight.double().T + m.mem_v.bias.double())
        outs.append(torch.cat(per_head, dim=1))
    y = torch.stack(outs)
    return y @ m.proj.weight.double().T + m.proj.bias.double()


def _randomise_bn(m):
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.5, 0.5)
        m.norm.running_mean.uniform_(-0.2, 0.2)
        m.norm.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize('hw,reduction', [((8, 8), 1), ((7, 11), 1), ((7, 11), 4)])
def test_single_head_matches_naive(hw, reduction):
    torch.manual_seed(0)
    m = ExternalAttention(16, num_slots=8, reduction=reduction).eval()
    _randomise_bn(m)
    x = torch.randn(2, 16, *hw)
    y = m(x)
    assert y.shape == x.shape
    ref = _naive_single_head(m, x)
    assert (y.double() - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize('hw', [(8, 8), (5, 9)])
def test_multi_head_matches_naive(hw):
    torch.manual_seed(0)
    m = MultiHeadExternalAttention(16, num_heads=2, expand_ratio=4, num_slots=8).eval()
    x = torch.randn(2, hw[0] * hw[1], 16)
    y = m(x, hw)
    assert y.shape == x.shape
    assert m.num_heads == 8 and m.head_dims == 8
    ref = _naive_multi_head(m, x)
    assert (y.double() - ref).abs().max().item() <= 1e-6


def test_multi_head_official_defaults_and_hw_check():
    m = MultiHeadExternalAttention(64)
    assert m.num_heads == 32 and m.num_slots == 64
    assert m.trans_dims.out_features == 256 and m.proj.in_features == 256
    with pytest.raises(ValueError, match='hw_shape'):
        m(torch.randn(1, 10, 64), (3, 4))
    with pytest.raises(ValueError, match='divisible'):
        MultiHeadExternalAttention(10, num_heads=3)


def test_tied_init_matches_official_state():
    torch.manual_seed(0)
    c = 512
    m = ExternalAttention(c)
    mk, mv = m.mem_k.weight, m.mem_v.weight
    assert mk.shape == (64, c, 1) and mv.shape == (c, 64, 1)
    assert torch.equal(mv, mk.permute(1, 0, 2))
    # values tied, storage not: the parameters train independently (official GPU behaviour)
    assert mk.data_ptr() != mv.data_ptr()
    # officially the shared storage is drawn last with fan_out = C
    assert abs(mv.std().item() - math.sqrt(2.0 / c)) < 0.1 * math.sqrt(2.0 / c)
    assert torch.all(m.norm.weight == 1) and torch.all(m.norm.bias == 0)
    # init_weights (what MMEngine calls) restores the tie after a parent re-initialised us
    with torch.no_grad():
        mv.normal_()
    m.init_weights()
    assert torch.equal(m.mem_v.weight, m.mem_k.weight.permute(1, 0, 2))
    untied = ExternalAttention(32, tie_init=False)
    assert not torch.equal(untied.mem_v.weight, untied.mem_k.weight.permute(1, 0, 2))


def test_block_is_identity_at_init_and_builds_as_plugin():
    from mmcv.cnn import build_plugin_layer

    torch.manual_seed(0)
    name, block = build_plugin_layer(
        dict(type='mmattn.ExternalAttentionBlock'), postfix=1, in_channels=32
    )
    assert name == 'ea_block1' and isinstance(block, ExternalAttentionBlock)
    assert block.conv_in.out_channels == 8 and block.mem_k.weight.shape == (64, 8, 1)
    x = torch.randn(2, 32, 6, 7)  # negative values must survive (no trailing ReLU)
    for mode in (block.train(), block.eval()):
        assert torch.equal(mode(x), x)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    for m, x in (
        (ExternalAttention(8, num_slots=4), torch.randn(2, 8, 5, 6)),
        (MultiHeadExternalAttention(8, num_heads=2, num_slots=4), torch.randn(2, 30, 8)),
    ):
        m.train()
        y = m(x) if x.dim() == 4 else m(x, (5, 6))
        y.square().sum().backward()
        for n, p in m.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_bf16_autocast_large_inputs_no_nan():
    torch.manual_seed(0)
    single = ExternalAttention(32).eval()
    multi = MultiHeadExternalAttention(32, num_heads=4).eval()
    x4 = torch.randn(1, 32, 48, 48) * 300.0  # large logits, N = 2304
    x3 = torch.randn(1, 48 * 48, 32) * 300.0
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y4 = single(x4)
        y3 = multi(x3, (48, 48))
    assert torch.isfinite(y4).all() and torch.isfinite(y3).all()
    # the fp32 normalisers keep bf16 close to fp32 on ordinary inputs
    x = torch.randn(1, 32, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        yb = single(x)
    assert (yb.float() - single(x)).abs().max() < 0.1


def test_registered_and_buildable_under_foreign_scope():
    for name in ('ExternalAttention', 'ExternalAttentionBlock', 'MultiHeadExternalAttention'):
        assert MODELS.get(name) is not None
    m = build_module(dict(type='MultiHeadExternalAttention', num_heads=2), embed_dims=8)
    assert isinstance(m, MultiHeadExternalAttention)
