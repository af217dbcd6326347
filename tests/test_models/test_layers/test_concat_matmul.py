"""concat_matmul: x @ y^T + u @ w^T as one GEMM, with a backward that skips constants."""

import pytest
import torch

from mmattn.models.layers.concat_matmul import concat_matmul


def _inputs(grad, m, n, d, k):
    g = torch.Generator().manual_seed(0)
    shapes = dict(x=(2, 3, m, d), y=(2, 3, n, d), u=(2, 3, m, k), w=(2, 3, n, k))
    return {
        k: torch.randn(*s, dtype=torch.float64, generator=g).requires_grad_(k in grad)
        for k, s in shapes.items()
    }


# (M, N, d, K): the first two take the concatenated form, the others accumulate in place
SHAPES = [(20, 20, 2, 3), (9, 40, 4, 3), (5, 7, 4, 6), (3, 50, 4, 9)]


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('grad', ['xyu', 'xyw', 'xyuw', 'w', 'x', ''])
def test_value_and_gradients_equal_the_two_products(grad, shape):
    t = _inputs(grad, *shape)
    out = concat_matmul(t['x'], t['y'], t['u'], t['w'])
    ref = t['x'] @ t['y'].transpose(-2, -1) + t['u'] @ t['w'].transpose(-2, -1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    weight = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    needed = [t[k] for k in 'xyuw' if k in grad]
    if not needed:
        return
    got = torch.autograd.grad((out * weight).sum(), needed)
    want = torch.autograd.grad((ref * weight).sum(), needed)
    for k, a, b in zip([k for k in 'xyuw' if k in grad], got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=k)


def test_constants_get_no_gradient_and_broadcast_factors_accumulate():
    """A constant basis gets no gradient; a factor shared by the batch (expanded) gets the
    batch's summed gradient, as with the plain products; gradcheck of the custom backward."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(2, 7, 4, dtype=torch.float64, generator=g, requires_grad=True)
    p = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    basis = torch.randn(7, 3, dtype=torch.float64, generator=g)
    out = concat_matmul(x, y, p.expand(2, 5, 3), basis.expand(2, 7, 3))
    out.square().sum().backward()
    assert basis.grad is None
    pg = p.grad.clone()
    p.grad = None
    (x @ y.transpose(-2, -1) + p @ basis.t()).square().sum().backward()
    torch.testing.assert_close(pg, p.grad, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a, b, c: concat_matmul(a, b, c.expand(2, 5, 3), basis.expand(2, 7, 3)),
        (x.detach().requires_grad_(), y.detach().requires_grad_(), p.detach().requires_grad_()),
    )
