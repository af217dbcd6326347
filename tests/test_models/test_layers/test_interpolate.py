"""linear_interp_matrix must reproduce F.interpolate(mode='bilinear', align_corners=False) as
``Wh @ x @ Ww^T``, values and gradients, for growing, shrinking, mixed and odd sizes."""
import pytest
import torch
import torch.nn.functional as F

from mmattn.models.layers.interpolate import linear_interp_matrix


def bilinear_resize(x, size):
    h, w = x.shape[-2:]
    wh = linear_interp_matrix(h, size[0], x.dtype, x.device)
    ww = linear_interp_matrix(w, size[1], x.dtype, x.device)
    return wh @ x @ ww.t()

SIZES = [((7, 7), (128, 128)), ((7, 7), (3, 5)), ((9, 14), (33, 6)), ((1, 4), (5, 1)),
         ((28, 28), (7, 7)), ((5, 6), (5, 6)), ((7, 7), (13, 200))]


@pytest.mark.parametrize('src,dst', SIZES)
def test_values_and_gradients_equal_interpolate_float64(src, dst):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *src, dtype=torch.float64, requires_grad=True)
    ref = F.interpolate(x, size=dst, mode='bilinear', align_corners=False)
    out = bilinear_resize(x, dst)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    g = torch.randn_like(ref)
    (gr, ) = torch.autograd.grad(ref, x, g)
    (go, ) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(go, gr, rtol=0, atol=1e-12)


def test_float32_and_leading_dims():
    x = torch.randn(4, 49, 7, 7)
    ref = F.interpolate(x, size=(31, 17), mode='bilinear', align_corners=False)
    torch.testing.assert_close(bilinear_resize(x, (31, 17)), ref, rtol=1e-5, atol=1e-5)
    # any number of leading dims: a 3-D table gives the same as its 4-D form
    torch.testing.assert_close(bilinear_resize(x[0], (31, 17)), ref[0], rtol=1e-5, atol=1e-5)


def test_interp_matrix_rows_are_convex_weights():
    m = linear_interp_matrix(7, 19, torch.float64, torch.device('cpu'))
    assert m.shape == (19, 7)
    assert (m >= 0).all()
    torch.testing.assert_close(m.sum(1), torch.ones(19, dtype=torch.float64))
    # at most two neighbouring samples per output
    assert ((m > 0).sum(1) <= 2).all()
