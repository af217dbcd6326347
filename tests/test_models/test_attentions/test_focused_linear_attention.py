"""FocusedLinearAttention against naive N x n references (with and without spatial reduction),
AMP safety, the official initial state and the pos-enc resize."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.focused_linear_attention import FocusedLinearAttention
from mmattn.models.layers.interpolate import resize_pos_table
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
        tp = t**m.focusing_factor
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
    if m.lepe is not None:  # CSWin's LePE: a depthwise conv over all channels of V
        lepe = F.conv2d(
            vmap, m.lepe.weight.double(), m.lepe.bias.double(), padding=m.lepe.padding, groups=C
        )
        out = out + lepe.flatten(2).transpose(1, 2)
    return F.linear(out, m.proj.weight.double(), m.proj.bias.double())


#: fp32 op vs float64 reference, relative to the output's largest value: the cubic focusing
#: triples relative rounding errors and the normalisers add a few eps; the worst of 300 random
#: cases (30 seeds x orders x sizes x sr 1/2/4) measured 3e-6. A wrong formula is off by O(1).
REL_TOL = 1e-5


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).abs().max() / ref.abs().max()).item()


def _linear_resample_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` matrix of 1-D linear resampling with half-pixel centres.

    Built entry by entry from the definition (output sample ``i`` sits at input coordinate
    ``(i + 0.5) * n_in / n_out - 0.5``, clamped at 0, and mixes its two neighbours), not by
    calling ``F.interpolate``.
    """
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(src), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        mat[i, lo] += 1.0 - frac
        mat[i, hi] += frac
    return mat


def naive_flatten_sr(m: FocusedLinearAttention, x: torch.Tensor, hw) -> torch.Tensor:
    """The op with spatial reduction (``sr_ratio > 1``), materialised in float64.

    Keys and values come from the map reduced by a stride-``sr`` conv and a LayerNorm written
    out by hand; the N x n focused kernel matrix is built explicitly and row-normalised (row
    sums + ``n * 1e-6``); for the DWC the n reduced value tokens are resampled to N by an
    explicit linear-interpolation matrix over the flattened sequence (the official behaviour).
    """
    H, W = hw
    B, N, C = x.shape
    h, d, r = m.num_heads, m.head_dims, m.sr_ratio
    x = x.double()
    q = x @ m.q.weight.double().t() + m.q.bias.double()
    grid = x.reshape(B, H, W, C).permute(0, 3, 1, 2)
    red = F.conv2d(grid, m.sr.weight.double(), m.sr.bias.double(), stride=r)
    hr, wr = red.shape[-2:]
    assert (hr, wr) == (H // r, W // r)
    t = red.reshape(B, C, hr * wr).permute(0, 2, 1)  # (B, n, C)
    n = hr * wr
    mu = t.mean(-1, keepdim=True)
    var = ((t - mu) ** 2).mean(-1, keepdim=True)
    t = (t - mu) / torch.sqrt(var + m.norm.eps) * m.norm.weight.double() + m.norm.bias.double()
    kv = t @ m.kv.weight.double().t() + m.kv.bias.double()
    k, v = kv[..., :C], kv[..., C:]
    if m.positional_encoding is not None:
        h0, w0 = m.pos_hw
        table = m.positional_encoding.double().reshape(1, h0, w0, C).permute(0, 3, 1, 2)
        if (h0, w0) != (hr, wr):
            table = F.interpolate(table, size=(hr, wr), mode='bilinear', align_corners=False)
        k = k + table.permute(0, 2, 3, 1).reshape(1, n, C)
    scale = F.softplus(m.scale.double())

    def phi(z):
        z = (torch.relu(z) + 1e-6) / scale
        zp = z**m.focusing_factor
        return zp / zp.norm(dim=-1, keepdim=True) * z.norm(dim=-1, keepdim=True)

    qf, kf = phi(q), phi(k)
    out = torch.zeros(B, N, C, dtype=torch.float64)
    for i in range(h):
        sl = slice(i * d, (i + 1) * d)
        a = qf[..., sl] @ kf[..., sl].transpose(1, 2)  # (B, N, n)
        a = a / (a.sum(-1, keepdim=True) + n * 1e-6)
        out[..., sl] = a @ v[..., sl]
    v_full = _linear_resample_matrix(n, N) @ v  # (B, N, C): each head's channels resampled
    w = m.dwc.weight.double().repeat(h, 1, 1, 1)
    b = m.dwc.bias.double().repeat(h)
    vmap = v_full.reshape(B, H, W, C).permute(0, 3, 1, 2)
    out = out + F.conv2d(vmap, w, b, padding=m.dwc.padding, groups=C).flatten(2).transpose(1, 2)
    return out @ m.proj.weight.double().t() + m.proj.bias.double()


def test_linear_resample_matrix_is_what_the_op_relies_on():
    """The hand-built matrix agrees with torch's linear mode (so the reference is the op's
    documented behaviour, not a different resampling)."""
    seq = torch.randn(2, 3, 12, dtype=torch.float64)
    for n_out in (12, 31, 5):
        ref = F.interpolate(seq, size=n_out, mode='linear')
        torch.testing.assert_close(seq @ _linear_resample_matrix(12, n_out).t(), ref)


@pytest.mark.parametrize('order', ['linear', 'quadratic'])
@pytest.mark.parametrize('sr_ratio,hw', [(2, (8, 8)), (2, (7, 9)), (4, (9, 13))])
@pytest.mark.parametrize('pretrain_hw', [None, (8, 8), (16, 12)])
def test_spatial_reduction_matches_naive_reference(order, sr_ratio, hw, pretrain_hw):
    m = _randomise(
        FocusedLinearAttention(
            32, num_heads=4, sr_ratio=sr_ratio, pretrain_hw=pretrain_hw, compute_order=order
        )
    )
    x = torch.randn(2, hw[0] * hw[1], 32, generator=torch.Generator().manual_seed(1))
    out = m(x, hw)
    ref = naive_flatten_sr(m, x, hw)
    assert out.shape == x.shape
    assert _rel_err(out, ref) <= REL_TOL


@pytest.mark.parametrize('order', ['linear', 'quadratic'])
@pytest.mark.parametrize('hw', [(6, 6), (5, 7)])
@pytest.mark.parametrize('pretrain_hw', [None, 'same', (4, 6)])
def test_matches_naive_reference(order, hw, pretrain_hw):
    if pretrain_hw == 'same':
        pretrain_hw = hw
    m = _randomise(
        FocusedLinearAttention(32, num_heads=4, pretrain_hw=pretrain_hw, compute_order=order)
    )
    x = torch.randn(2, hw[0] * hw[1], 32, generator=torch.Generator().manual_seed(1))
    out = m(x, hw)
    ref = naive_flatten(m, x, hw)
    assert out.shape == x.shape
    assert _rel_err(out, ref) <= REL_TOL


@pytest.mark.parametrize('hw', [(6, 6), (5, 7)])
def test_lepe_matches_naive_reference(hw):
    """FLatten-CSWin's extra LePE conv (``lepe_kernel_size=3``) is added to the output."""
    m = _randomise(FocusedLinearAttention(32, num_heads=4, pretrain_hw=hw, lepe_kernel_size=3))
    x = torch.randn(2, hw[0] * hw[1], 32, generator=torch.Generator().manual_seed(1))
    assert m.lepe.weight.shape == (32, 1, 3, 3)
    assert _rel_err(m(x, hw), naive_flatten(m, x, hw)) <= REL_TOL
    with torch.no_grad():
        m.lepe.weight.zero_(), m.lepe.bias.zero_()
        plain = _randomise(FocusedLinearAttention(32, num_heads=4, pretrain_hw=hw))
        plain.load_state_dict({k: v for k, v in m.state_dict().items() if 'lepe' not in k})
        torch.testing.assert_close(m(x, hw), plain(x, hw))
    with pytest.raises(ValueError, match='sr_ratio=1'):
        FocusedLinearAttention(32, num_heads=4, sr_ratio=2, lepe_kernel_size=3)


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
    assert resize_pos_table(table, (4, 6), (4, 6)) is table
    out = resize_pos_table(table, (4, 6), (9, 5))
    grid = table.reshape(1, 4, 6, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(9, 5), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out, ref.flatten(2).transpose(1, 2))
    # Row-major grid reading: a table constant along rows stays constant along rows.
    rows = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 6, 2).reshape(1, 24, 2)
    up = resize_pos_table(rows, (4, 6), (8, 3)).reshape(8, 3, 2)
    assert torch.allclose(up, up[:, :1].expand_as(up))
    assert torch.all(up[1:, 0, 0] >= up[:-1, 0, 0])
    with pytest.raises(ValueError, match='tokens'):
        resize_pos_table(table, (5, 6), (8, 8))


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
        m.positional_encoding.add_(1.0)
        assert not torch.allclose(before, m(x, (9, 7)))


@pytest.mark.parametrize('sr_ratio', [1, 2])
def test_gradients_reach_every_parameter(sr_ratio):
    m = _randomise(
        FocusedLinearAttention(16, num_heads=2, sr_ratio=sr_ratio, pretrain_hw=(8, 8))
    ).train()
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
        hw = (
            int(torch.randint(2, 13, (1,), generator=g)),
            int(torch.randint(2, 13, (1,), generator=g)),
        )
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


def test_initial_state_is_official():
    """Official start: scale 0 (softplus: log 2 on every channel) and P 0 from the constructor;
    init_weights re-draws q/kv/proj (trunc. normal, std 0.02, zero bias) and keeps scale and P.

    The linears are filled with ones first, so a no-op init_weights fails the std check.
    """
    m = FocusedLinearAttention(16, num_heads=2, pretrain_hw=6)
    with torch.no_grad():
        for lin in (m.q, m.kv, m.proj):
            lin.weight.fill_(1.0)
            lin.bias.fill_(1.0)
    m.init_weights()
    for lin in (m.q, m.kv, m.proj):
        assert 0.015 < lin.weight.std().item() < 0.025, lin
        assert lin.weight.abs().max().item() < 0.15 and not lin.bias.any()
    torch.testing.assert_close(F.softplus(m.scale), torch.full((1, 1, 16), math.log(2.0)))
    assert m.positional_encoding.shape == (1, 36, 16) and not m.positional_encoding.any()


def _set_kernel_divisor(m: FocusedLinearAttention, divisor: torch.Tensor) -> None:
    """Set ``scale`` so that ``softplus(scale) == divisor`` (inverse softplus)."""
    with torch.no_grad():
        m.scale.copy_(torch.log(torch.expm1(divisor)))


def test_scale_acts_per_channel_and_pos_encoding_shifts_keys():
    """What the learned scale and P can change, checked on the op's output.

    phi_p is positively homogeneous, so a factor common to all channels of the divisor cancels
    in the row normalisation except through the 1e-6 epsilons (measured: 1e-5 to 6e-3 of the
    output for a factor 2 to 3): mostly the divisor's per-channel profile matters (measured:
    0.14 to 0.22 of the output for a 0.5-2 profile). An op that ignored ``scale`` fails the
    per-channel assertion; an op that ignored P fails the last one.
    """
    m = _randomise(FocusedLinearAttention(16, num_heads=2, pretrain_hw=(5, 7)))
    x = torch.randn(1, 35, 16, generator=torch.Generator().manual_seed(0))
    divisor = F.softplus(m.scale.detach().clone())
    with torch.no_grad():
        base = m(x, (5, 7))
        _set_kernel_divisor(m, divisor * 2.0)  # common factor: (almost) no effect
        common = m(x, (5, 7))
        profile = torch.linspace(0.5, 2.0, 16).view(1, 1, 16)
        _set_kernel_divisor(m, divisor * profile)  # per-channel factor: an effect
        per_channel = m(x, (5, 7))
        _set_kernel_divisor(m, divisor)
        m.positional_encoding.add_(torch.randn_like(m.positional_encoding))
        shifted = m(x, (5, 7))
    rel = lambda a: ((a - base).norm() / base.norm()).item()  # noqa: E731
    assert rel(per_channel) > 0.05, rel(per_channel)
    assert rel(common) < 0.1 * rel(per_channel), (rel(common), rel(per_channel))
    assert rel(shifted) > 0.05, rel(shifted)


def test_registry_and_argument_checks():
    m = build_module(dict(type='FocusedLinearAttention', embed_dims=16, num_heads=2, pretrain_hw=6))
    assert m.positional_encoding.shape == (1, 36, 16)
    assert m.dwc.weight.shape == (8, 1, 5, 5)  # one kernel shared by the heads
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
