"""CSWinAttention against dense attention under an explicit stripe mask, plus LePE by slices."""

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions import capture_attention
from mmattn.models.attentions.cross_shaped_window_attention import CSWinAttention, stripe_layout


def reference(op, x, hw):
    """Float64 CSWin written independently of the op's reshapes.

    Per branch (channel half): Q, K, V zero-padded to whole stripes (half the padding on each
    side, as the official dense code), dense attention over the whole padded map with
    ``-inf`` between tokens of different stripes (padded keys of the same stripe are NOT
    masked, as the official code), LePE as a zero-padded depthwise conv on each stripe's slice
    of V, then crop, concat and project.
    """
    b, n, c = x.shape
    h, w = hw
    qkv = x.double() @ op.qkv.weight.double().T
    if op.qkv.bias is not None:
        qkv = qkv + op.qkv.bias.double()
    qkv = qkv.reshape(b, h, w, 3, c)
    s = op.split_size
    if s is None:
        branches = [(0, c, h, w)]
    else:
        branches = [(0, c // 2, h, s), (c // 2, c // 2, s, w)]
    heads = op.num_heads // len(branches)
    wgt, bias = op.lepe.weight.double(), op.lepe.bias.double()
    outs = []
    for c0, cb, sh, sw in branches:
        ph, pw = (-h) % sh, (-w) % sw
        top, left = ph // 2, pw // 2
        hp, wp = h + ph, w + pw
        part = torch.zeros(b, hp, wp, 3, cb, dtype=torch.float64)
        part[:, top : top + h, left : left + w] = qkv[..., c0 : c0 + cb]
        q, k, v = (
            part[:, :, :, i].reshape(b, hp * wp, heads, cb // heads).transpose(1, 2)
            for i in range(3)
        )
        rows, cols = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
        stripe = ((rows // sh) * (wp // sw) + cols // sw).reshape(-1)
        logits = (q * op.scale) @ k.transpose(-2, -1)
        logits = logits.masked_fill(stripe[:, None] != stripe[None, :], float('-inf'))
        out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, hp, wp, cb)
        vmap = part[:, :, :, 2].permute(0, 3, 1, 2)  # (b, cb, hp, wp)
        lepe = torch.zeros_like(vmap)
        for r0 in range(0, hp, sh):
            for q0 in range(0, wp, sw):
                lepe[:, :, r0 : r0 + sh, q0 : q0 + sw] = F.conv2d(
                    vmap[:, :, r0 : r0 + sh, q0 : q0 + sw],
                    wgt[c0 : c0 + cb],
                    bias[c0 : c0 + cb],
                    padding=op.lepe.padding,
                    groups=cb,
                )
        out = out + lepe.permute(0, 2, 3, 1)
        outs.append(out[:, top : top + h, left : left + w])
    out = torch.cat(outs, -1).reshape(b, n, c)
    return out @ op.proj.weight.double().T + op.proj.bias.double()


def _op(dims=16, heads=4, **kwargs):
    torch.manual_seed(0)
    op = CSWinAttention(dims, heads, **kwargs).eval()
    with torch.no_grad():  # non-trivial biases, so a dropped bias or wrong slice shows
        op.qkv.bias.normal_(0, 0.5)
        op.lepe.bias.normal_(0, 0.5)
    return op


@pytest.mark.parametrize('hw', [(14, 14), (11, 17), (7, 7), (5, 9), (1, 3)])
@pytest.mark.parametrize('split', [1, 2, 7, None])
@pytest.mark.parametrize('fused', [True, False])
def test_matches_masked_dense_reference(hw, split, fused):
    op = _op(split_size=split, fused_attn=fused).double()
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
    with torch.no_grad():
        out = op(x, hw)
    assert out.shape == x.shape
    torch.testing.assert_close(out, reference(op, x, hw), rtol=1e-10, atol=1e-10)


def test_float32_matches_reference_and_official_layout_exactness():
    """No padding (H, W multiples of the stripe): every token attends exactly within its
    stripe; with padding the padded keys take weight (official), so a padded map differs from
    the same map cut without padding."""
    op = _op(split_size=7)
    x = torch.randn(1, 14 * 21, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            op(x, (14, 21)).double(), reference(op, x, (14, 21)), rtol=1e-4, atol=1e-5
        )
        # a map needing padding: the border stripes see the zero keys
        y = torch.randn(1, 10 * 10, 16)
        ref = reference(op, y, (10, 10))
        torch.testing.assert_close(op(y, (10, 10)).double(), ref, rtol=1e-4, atol=1e-5)


def test_padding_is_split_between_both_sides():
    """As the official dense code: half the padding before, the odd pixel after."""
    assert stripe_layout((10, 10), (10, 7)) == ((10, 14), (0, 0, 2, 2))
    assert stripe_layout((10, 11), (7, 11)) == ((14, 11), (2, 2, 0, 0))
    assert stripe_layout((5, 9), (5, 7)) == ((5, 14), (0, 0, 2, 3))
    assert stripe_layout((14, 21), (14, 7)) == ((14, 21), (0, 0, 0, 0))


def test_global_mode_is_full_attention():
    op = _op(split_size=None, heads=2).double()
    x = torch.randn(1, 6 * 5, 16, dtype=torch.float64)
    b, n, c = x.shape
    with torch.no_grad():
        q, k, v = (x @ op.qkv.weight.T + op.qkv.bias).reshape(b, n, 3, 2, 8).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * 8**-0.5).softmax(-1) @ v
        vmap = v.transpose(-2, -1).reshape(b, c, 6, 5)
        lepe = F.conv2d(vmap, op.lepe.weight, op.lepe.bias, padding=1, groups=c)
        out = attn.transpose(1, 2).reshape(b, n, c) + lepe.flatten(2).transpose(1, 2)
        out = op.proj(out)
        torch.testing.assert_close(op(x, (6, 5)), out, rtol=1e-10, atol=1e-10)


def test_gradients_reach_every_parameter():
    op = _op(split_size=2).train()
    x = torch.randn(2, 9 * 7, 16, requires_grad=True)
    op(x, (9, 7)).square().mean().backward()
    for name, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_gradcheck_float64():
    op = _op(dims=8, heads=2, split_size=2).double()
    x = torch.randn(1, 5 * 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: op(t, (5, 3)), (x,))


@pytest.mark.parametrize('split', [1, 7, None])
def test_bf16_autocast_no_nan(split):
    op = _op(split_size=split)
    x = torch.randn(2, 13 * 11, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = op(x, (13, 11))
        big = op(x * 1e3, (13, 11))  # saturated softmax rows stay finite
    assert torch.isfinite(out).all() and torch.isfinite(big).all()
    ref = op(x, (13, 11))
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_batch_independence():
    op = _op(split_size=7).double()
    x = torch.randn(3, 10 * 12, 16, dtype=torch.float64)
    with torch.no_grad():
        full = op(x, (10, 12))
        for i in range(3):
            torch.testing.assert_close(
                op(x[i : i + 1], (10, 12)), full[i : i + 1], rtol=0, atol=1e-12
            )


def test_recorded_rows_are_distributions_in_the_stripe():
    op = _op(split_size=3).double()
    hw = (7, 8)
    x = torch.randn(1, 56, 16, dtype=torch.float64)
    with torch.no_grad(), capture_attention(op) as records:
        op(x, hw)
    assert [r.title.split()[1] for r in records] == ['vertical', 'horizontal']
    vert = records[0]
    row = vert.row(2 * 8 + 4)  # query (2, 4); padded width 9, offset (0, 0): stripe cols 3-5
    torch.testing.assert_close(row.sum(-1), torch.ones(2, dtype=torch.float64))
    grid = row.reshape(2, *vert.key_hw)
    assert vert.key_hw == (7, 9)
    assert grid[:, :, :3].abs().sum() == 0 and grid[:, :, 6:].abs().sum() == 0
    from mmattn.analysis.query_maps import query_maps

    maps = query_maps(op, records, (2, 4))
    assert all(m.map.shape == hw for m in maps)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(embed_dims=18, num_heads=3), 'even'),
        (dict(split_size=0), 'positive'),
        (dict(num_heads=5, split_size=None), 'divisible'),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(embed_dims=16, num_heads=4, split_size=7)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        CSWinAttention(**args)


def test_odd_heads_allowed_globally():
    op = CSWinAttention(15, 3, split_size=None)
    assert op(torch.randn(1, 12, 15), (3, 4)).shape == (1, 12, 15)
