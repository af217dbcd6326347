"""FocusedLinearAttention against a naive N x n reference, AMP safety and the pos-enc resize."""
import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.focused_linear_attention import (
    FocusedLinearAttention,
    resize_pos_encoding,
)
from mmattn.registry import build_module


def _randomise(m: FocusedLinearAttention, seed: int = 0) -> FocusedLinearAttention:
    """Non-trivial values for every parameter (the official init zeros scale and P)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m.eval()


def naive_flatten(m: FocusedLinearAttention, x: torch.Tensor, hw) -> torch.Tensor:
    """Materialise phi_p(Q) phi_p(K)^T per head in float64 (sr_ratio 1 only).

    Written from the paper's formulas, independent of the op's code path: the focusing
    function is the literal ``x**p / ||x**p|| * ||x||`` and the DWC is one grouped conv over
    all heads with the shared kernel repeated.
    """
    H, W = hw
    B, N, C = x.shape
    h, d = m.num_heads, m.head_dims
    x = x.double()
    q = F.linear(x, m.q.weight.double(), m.q.bias.double())
    kv = F.linear(x, m.kv.weight.double(), m.kv.bias.double())
    k, v = kv[..., :C], kv[..., C:]
    if m.positional_encoding is not None:
        h0, w0 = m.pos_hw
        table = m.positional_encoding.double().reshape(1, h0, w0, C).permute(0, 3, 1, 2)
        if (h0, w0) != (H, W):
            table = F.interpolate(table, size=(H, W), mode='bilinear', align_corners=False)
        k = k + table.permute(0, 2, 3, 1).reshape(1, N, C)
    scale = F.softplus(m.scale.double())

    def phi(t):
        t = (torch.relu(t) + 1e-6) / scale
        tp = t ** m.focusing_factor
        return tp / tp.norm(dim=-1, keepdim=True) * t.norm(dim=-1, keepdim=True)

    qf, kf = phi(q), phi(k)
    out = torch.zeros(B, N, C, dtype=torch.float64)
    for i in range(h):
        sl = slice(i * d, (i + 1) * d)
        a = qf[..., sl] @ kf[..., sl].transpose(1, 2)  # (B, N, N) focused kernel matrix
        a = a / (a.sum(-1, keepdim=True) + N * 1e-6)
        out[..., sl] = a @ v[..., sl]
    w = m.dwc.weight.double().repeat(h, 1, 1, 1)
    b = m.dwc.bias.double().repeat(h)
    vmap = v.transpose(1, 2).reshape(B, C, H, W)
    dwc = F.conv2d(vmap, w, b, padding=m.dwc.padding, groups=C)
    out = out + dwc.flatten(2).transpose(1, 2)
    return F.linear(out, m.proj.weight.double(), m.proj.bias.double())


@pytest.mark.parametrize('order', ['linear', 'quadratic'])
@pytest.mark.parametrize('hw', [(6, 6), (5, 7)])
@pytest.mark.parametrize('pretrain_hw', [None, 'same', (4, 6)])
def test_matches_naive_reference(order, hw, pretrain_hw):
    if pretrain_hw == 'same':
        pretrain_hw = hw
    m = _randomise(FocusedLinearAttention(32, num_heads=4, pretrain_hw=pretrain_hw,
                                          compute_order=order))
    x = torch.randn(2, hw[0] * hw[1], 32)
    out = m(x, hw)
    ref = naive_flatten(m, x, hw)
    assert out.shape == x.shape
    assert (out.double() - ref).abs().max().item() <= 1e-5


def test_orders_agree_and_auto_picks_cheaper():
    m = _randomise(FocusedLinearAttention(64, num_heads=2, pretrain_hw=(7, 7)))
    # head dim 32: (QK^T)V is cheaper for N = n < 32, Q(K^TV) for larger maps.
    assert not m.use_linear_order(25, 25)
    assert m.use_linear_order(49, 49)
    for hw in [(5, 5), (7, 7), (9, 11)]:
        x = torch.randn(1, hw[0] * hw[1], 64)
        outs = []
        for order in ('linear', 'quadratic', 'auto'):
            m.compute_order = order
            outs.append(m(x, hw))
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(outs[2], outs[0], rtol=1e-5, atol=1e-5)


def test_pos_encoding_resize():
    table = torch.randn(1, 4 * 6, 8)
    # Identity at the pretraining size: the same tensor, not a resampled copy.
    assert resize_pos_encoding(table, (4, 6), (4, 6)) is table
    out = resize_pos_encoding(table, (4, 6), (9, 5))
    grid = table.reshape(1, 4, 6, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(9, 5), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out, ref.flatten(2).transpose(1, 2))
    # Row-major grid reading: a table constant along rows stays constant along rows.
    rows = torch.arange(4.).view(1, 4, 1, 1).expand(1, 4, 6, 2).reshape(1, 24, 2)
    up = resize_pos_encoding(rows, (4, 6), (8, 3)).reshape(8, 3, 2)
    assert torch.allclose(up, up[:, :1].expand_as(up))
    assert torch.all(up[1:, 0, 0] >= up[:-1, 0, 0])
    with pytest.raises(ValueError, match='tokens'):
        resize_pos_encoding(table, (5, 6), (8, 8))


def test_pos_encoding_used_at_any_size_and_learns():
    m = _randomise(FocusedLinearAttention(16, num_heads=2, pretrain_hw=(4, 4)))
    for hw in [(4, 4), (3, 5), (9, 7)]:
        x = torch.randn(1, hw[0] * hw[1], 16)
        m.zero_grad()
        m(x, hw).sum().backward()
        assert m.positional_encoding.grad.abs().sum() > 0
    # Changing P changes the output at a size other than the pretraining one.
    x = torch.randn(1, 9 * 7, 16)
    with torch.no_grad():
        before = m(x, (9, 7))
        m.positional_encoding.add_(1.)
        assert not torch.allclose(before, m(x, (9, 7)))


@pytest.mark.parametrize('sr_ratio', [1, 2])
def test_gradients_reach_every_parameter(sr_ratio):
    m = _randomise(FocusedLinearAttention(16, num_heads=2, sr_ratio=sr_ratio,
                                          pretrain_hw=(8, 8))).train()
    x = torch.randn(2, 7 * 9, 16, requires_grad=True)
    m(x, (7, 9)).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_spatial_reduction_shapes_and_orders():
    m = _randomise(FocusedLinearAttention(32, num_heads=2, sr_ratio=2, pretrain_hw=(8, 8)))
    assert m.positional_encoding.shape == (1, 16, 32)
    x = torch.randn(2, 7 * 9, 32)
    m.compute_order = 'linear'
    a = m(x, (7, 9))
    m.compute_order = 'quadratic'
    b = m(x, (7, 9))
    assert a.shape == x.shape
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_large_inputs_stay_finite():
    g = torch.Generator().manual_seed(0)
    m = _randomise(FocusedLinearAttention(64, num_heads=2, pretrain_hw=(8, 8)), seed=1)
    for i in range(100):
        hw = (int(torch.randint(2, 13, (1,), generator=g)),
              int(torch.randint(2, 13, (1,), generator=g)))
        mag = 10 ** float(torch.empty(1).uniform_(0, 4, generator=g))
        x = torch.randn(2, hw[0] * hw[1], 64, generator=g) * mag
        if i % 2:
            x = x.abs()  # all-positive tokens: the kernel map sees only large values
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = m(x, hw)
        assert out.dtype == torch.bfloat16
        assert torch.isfinite(out).all(), (i, hw, mag)


def test_fp32_kernel_does_not_overflow():
    # The literal x**3 overflows fp32 for |x| ~ 1e13; the max-normalised form does not.
    m = _randomise(FocusedLinearAttention(16, num_heads=2))
    x = torch.randn(1, 16, 16) * 1e14
    assert torch.isfinite(m(x, (4, 4))).all()


def test_registry_and_argument_checks():
    m = build_module(dict(type='FocusedLinearAttention', embed_dims=16, num_heads=2,
                          pretrain_hw=6))
    assert m.positional_encoding.shape == (1, 36, 16)
    assert m.dwc.weight.shape == (8, 1, 5, 5)  # one kernel shared by the heads
    m.init_weights()
    assert m.scale.abs().sum() == 0 and m.positional_encoding.abs().sum() == 0
    with pytest.raises(ValueError, match='hw_shape'):
        m(torch.randn(1, 10, 16), (3, 4))
    with pytest.raises(ValueError, match='attn_drop_rate'):
        FocusedLinearAttention(16, num_heads=2, attn_drop_rate=0.1)
    with pytest.raises(ValueError, match='qk_scale'):
        FocusedLinearAttention(16, num_heads=2, qk_scale=0.5)
    with pytest.raises(ValueError, match='divisible'):
        FocusedLinearAttention(18, num_heads=4)
    with pytest.raises(ValueError, match='compute_order'):
        FocusedLinearAttention(16, num_heads=2, compute_order='fast')
