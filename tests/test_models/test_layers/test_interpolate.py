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


SIZES = [
    ((7, 7), (128, 128)),
    ((7, 7), (3, 5)),
    ((9, 14), (33, 6)),
    ((1, 4), (5, 1)),
    ((28, 28), (7, 7)),
    ((5, 6), (5, 6)),
    ((7, 7), (13, 200)),
]


@pytest.mark.parametrize('src,dst', SIZES)
def test_values_and_gradients_equal_interpolate_float64(src, dst):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *src, dtype=torch.float64, requires_grad=True)
    ref = F.interpolate(x, size=dst, mode='bilinear', align_corners=False)
    out = bilinear_resize(x, dst)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    g = torch.randn_like(ref)
    (gr,) = torch.autograd.grad(ref, x, g)
    (go,) = torch.autograd.grad(out, x, g)
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


def test_matrices_are_cached_per_size_dtype_and_device():
    from mmattn.models.layers import interpolate

    a = linear_interp_matrix(7, 23, torch.float32, torch.device('cpu'))
    # the same object again (no rebuild: on a GPU every rebuild is ~20 kernel launches)
    assert linear_interp_matrix(7, 23, torch.float32, 'cpu') is a
    # another size or dtype is another entry, with its own values
    b = linear_interp_matrix(7, 24, torch.float32, torch.device('cpu'))
    assert b.shape == (24, 7) and b is not a
    c = linear_interp_matrix(7, 23, torch.float64, torch.device('cpu'))
    assert c.dtype == torch.float64
    torch.testing.assert_close(
        a,
        interpolate._build_linear_interp_matrix(7, 23, torch.float32, torch.device('cpu')),
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(c.float(), a, rtol=0, atol=1e-7)


def test_cached_matrix_first_built_under_inference_mode_serves_training():
    # eval under inference_mode first, then a training step at the same size: an inference
    # tensor in the cache could not be saved for backward
    size = (11, 37)
    with torch.inference_mode():
        bilinear_resize(torch.randn(1, 2, 5, 6), size)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float32, requires_grad=True)
    out = bilinear_resize(x, size)
    (g,) = torch.autograd.grad(out.sum(), x)
    ref = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    (gr,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g, gr, rtol=1e-5, atol=1e-5)


def test_cache_is_bounded():
    from mmattn.models.layers import interpolate

    for n in range(interpolate._MATRICES.max_entries + 10):
        linear_interp_matrix(3, 1000 + n, torch.float32, torch.device('cpu'))
    assert 0 < len(interpolate._MATRICES) <= interpolate._MATRICES.max_entries
