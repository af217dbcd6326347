"""AgentAttention's position biases and its CPU fast path.

The biases are computed as products of small interpolation matrices; the reference here is
the official definition written out with ``F.interpolate``: every table resized to the feature
size, the row and column tables summed before resizing, then the agent axis resized from the
pretraining agent grid to the run-time one."""

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.agent_attention import AgentAttention


def _op(dtype=torch.float32, **kw):
    torch.manual_seed(0)
    kw = {**dict(pretrain_hw=8, agent_num=4, agent_shape=(3, 3)), **kw}
    op = AgentAttention(16, num_heads=2, **kw)
    with torch.no_grad():
        for name, p in op.named_parameters():
            if name.endswith('_bias') and p.dim() > 1:
                p.normal_(0, 0.5)  # visible biases: zero tables would hide any mix-up
    return op.to(dtype).eval()


def _reference_biases(op, hw):
    """The official formula, one F.interpolate per table and per agent-grid resize."""
    heads, n = op.num_heads, op.agent_num
    h0, w0 = op.pretrain_hw

    def resize(t):
        return (
            t
            if tuple(t.shape[-2:]) == tuple(hw)
            else F.interpolate(t, size=tuple(hw), mode='bilinear', align_corners=False)
        )

    def agents(t):  # (heads, n, H, W) -> (heads, A', HW)
        g0, g = op.pretrain_grid, op.agent_shape
        hw_n = t.shape[-2] * t.shape[-1]
        if tuple(g0) == tuple(g):
            return t.reshape(heads, n, hw_n)
        t = t.reshape(heads, g0[0], g0[1], hw_n).permute(0, 3, 1, 2)
        t = F.interpolate(t, size=tuple(g), mode='bilinear', align_corners=False)
        return t.reshape(heads, hw_n, -1).transpose(1, 2)

    an = resize(op.an_bias) + resize((op.ah_bias + op.aw_bias).reshape(heads, n, h0, w0))
    na = resize(op.na_bias) + resize(
        (op.ha_bias + op.wa_bias).reshape(heads, h0, w0, n).permute(0, 3, 1, 2)
    )
    return agents(an), agents(na).transpose(1, 2)


@pytest.mark.parametrize(
    'kw,hw',
    [
        (dict(), (9, 11)),  # grid 2x2 -> 3x3, growing map
        (dict(), (8, 8)),  # pretraining size: the row / column tables unchanged
        (dict(), (7, 7)),  # the 7x7 table unchanged, row / column tables shrink
        (dict(agent_shape=None), (5, 13)),  # no agent-grid resize
        (dict(agent_num=9, agent_shape=(2, 4)), (12, 6)),  # shrinking, non-square agent grid
    ],
)
def test_biases_and_their_gradients_equal_the_interpolation_definition(kw, hw):
    op = _op(torch.float64, **kw)
    fast, ref = op.agent_biases(hw), _reference_biases(op, hw)
    for a, b in zip(fast, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    params = [op.an_bias, op.na_bias, op.ah_bias, op.aw_bias, op.ha_bias, op.wa_bias]
    g = [torch.randn_like(t) for t in ref]
    grads_fast = torch.autograd.grad(fast, params, g)
    grads_ref = torch.autograd.grad(ref, params, g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
        assert float(a.abs().sum()) > 0


def test_cpu_fast_path_equals_math_path_with_batch_and_grad():
    fast, ref = _op(), _op(fused_attn=False)
    x = torch.randn(3, 10 * 7, 16, requires_grad=True)
    out_fast, out_ref = fast(x, (10, 7)), ref(x, (10, 7))
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out_fast)
    grads_fast = torch.autograd.grad(out_fast, [x] + list(fast.parameters()), g)
    grads_ref = torch.autograd.grad(out_ref, [x] + list(ref.parameters()), g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(float(gr.abs().sum()) > 0 for gr in grads_fast)


def test_no_state_kept_between_calls():
    """Biases follow the parameters at once (no cache to go stale) and nothing bias-sized is
    kept on the module after a call."""
    op, ref = _op(), _op(fused_attn=False)
    x = torch.randn(1, 9 * 11, 16)
    with torch.no_grad():
        first = op(x, (9, 11))
        step = torch.randn_like(op.an_bias)
        for p in (op.an_bias, ref.an_bias):
            p.add_(step)
        updated = op(x, (9, 11))
        torch.testing.assert_close(updated, ref(x, (9, 11)), rtol=1e-5, atol=1e-6)
        assert (updated - first).abs().max() > 1e-3
    kept = [v for v in op.__dict__.values() if isinstance(v, (torch.Tensor, tuple))]
    assert not any(isinstance(v, torch.Tensor) and v.numel() >= 9 * 11 for v in kept)


def test_counted_biases_follow_the_official_formulation():
    """What the FLOP counter traces (``papers_formulation``) is the interpolation chain the
    papers' FLOPs count, with the values of the op's own matrix-product path."""
    from mmattn.analysis.flops import papers_formulation

    op = _op(torch.float64)
    fast = op.agent_biases((9, 11))

    class Biases(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.op = op

        def forward(self, x):
            return torch.cat([t.reshape(-1) for t in self.op.agent_biases((9, 11))]) + x

    with papers_formulation(op):
        traced = torch.jit.trace(Biases(), (torch.zeros(()),), check_trace=False)
    want = torch.cat([t.reshape(-1) for t in fast])
    torch.testing.assert_close(traced(torch.zeros(())), want, rtol=0, atol=1e-12)
    graph = str(traced.graph)
    assert 'upsample_bilinear2d' in graph and 'aten::matmul' not in graph
