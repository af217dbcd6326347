"""AgentAttention's CPU fast path and its per-size bias cache: equal to the math path, reused
only while nothing changes, recomputed when a bias parameter or the size changes."""
import torch

from mmattn.models.attentions.agent_attention import AgentAttention


def _op(**kw):
    torch.manual_seed(0)
    op = AgentAttention(16, num_heads=2, pretrain_hw=8, agent_num=4, agent_shape=(3, 3), **kw)
    with torch.no_grad():
        for name, p in op.named_parameters():
            if name.endswith('_bias') and p.dim() > 1:
                p.normal_(0, 0.5)  # visible biases, so a stale cache would show
    return op.eval()


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


def test_bias_cache_reused_then_invalidated():
    op, ref = _op(), _op(fused_attn=False)
    x = torch.randn(1, 9 * 11, 16)
    with torch.no_grad():
        first = op(x, (9, 11))
        cached = op.__dict__['_bias_cache'][1]
        again = op(x, (9, 11))
        assert op.__dict__['_bias_cache'][1] is cached  # reused, not recomputed
        torch.testing.assert_close(again, first)
        # an optimizer-style in-place update must invalidate it (not a constant shift: the
        # softmax would not see it)
        step = torch.randn_like(op.an_bias)
        for p in (op.an_bias, ref.an_bias):
            p.add_(step)
        updated = op(x, (9, 11))
        assert op.__dict__['_bias_cache'][1] is not cached
        torch.testing.assert_close(updated, ref(x, (9, 11)), rtol=1e-5, atol=1e-6)
        assert (updated - first).abs().max() > 1e-3
        # another size: other tables
        torch.testing.assert_close(op(x[:, :8 * 12], (8, 12)), ref(x[:, :8 * 12], (8, 12)),
                                   rtol=1e-5, atol=1e-6)
        # loading weights invalidates it too
        op.load_state_dict(_op().state_dict())
        torch.testing.assert_close(op(x, (9, 11)), first)


def test_training_never_uses_the_cache():
    op = _op()
    x = torch.randn(1, 36, 16)
    with torch.no_grad():
        op(x, (6, 6))
    op.train()
    op(x, (6, 6)).sum().backward()
    assert op.an_bias.grad is not None and float(op.an_bias.grad.abs().sum()) > 0
