"""BRA as block-sparse flex attention: equal to an independent dense reference (attention under
the routing block mask) and to BiLevelRoutingAttention's own routed attention."""

import pytest
import torch

from mmattn.models.attentions.bra_flex import (
    bra_flex_attention,
    regions_to_tokens,
    routed_block_mask,
    tokens_to_regions,
)


def _routing_mask(r_idx, n_win, rh, rw):
    """(B, N, N) token-level mask: token i may see token j iff j's region is routed from i's.

    A token's region is (row // rh) * n_win + col // rw of its pixel on the map, computed here
    from coordinates, independently of the region-major layout the flex path uses.
    """
    hp, wp = n_win * rh, n_win * rw
    rows = torch.arange(hp).repeat_interleave(wp)
    cols = torch.arange(wp).repeat(hp)
    region = (rows // rh) * n_win + cols // rw  # (N,)
    masks = []
    for idx in r_idx:
        allowed = torch.zeros(n_win * n_win, n_win * n_win, dtype=torch.bool)
        allowed[torch.arange(n_win * n_win).unsqueeze(1), idx] = True
        masks.append(allowed[region][:, region])
    return torch.stack(masks)


def _attend_masked(q, k, v, mask, num_heads, scale):
    b, hp, wp, c = q.shape
    d, dv = c // num_heads, v.shape[-1] // num_heads
    qt = q.reshape(b, hp * wp, num_heads, d).transpose(1, 2).double()
    kt = k.reshape(b, hp * wp, num_heads, d).transpose(1, 2).double()
    vt = v.reshape(b, hp * wp, num_heads, dv).transpose(1, 2).double()
    logits = (qt @ kt.transpose(-2, -1)) * scale
    logits = logits.masked_fill(~mask[:, None], float('-inf'))
    out = logits.softmax(-1) @ vt  # (B, heads, N, dv)
    return out.transpose(1, 2).reshape(b, hp, wp, num_heads * dv)


@pytest.mark.parametrize(
    'n_win,rh,rw,heads,topk', [(2, 3, 5, 2, 1), (3, 5, 7, 2, 4), (4, 2, 2, 1, 16)]
)
def test_layout_round_trip(n_win, rh, rw, heads, topk):
    x = torch.randn(2, n_win * rh, n_win * rw, heads * 4)
    tok = regions_to_tokens(x, n_win, heads)
    assert tok.shape == (2, heads, n_win * n_win * rh * rw, 4)
    # region p is the p-th block of rh*rw tokens: its first token is the region's top-left pixel
    p = n_win + 1 if n_win > 1 else 0
    r0, c0 = (p // n_win) * rh, (p % n_win) * rw
    torch.testing.assert_close(tok[:, 0, p * rh * rw], x[:, r0, c0, :4])
    torch.testing.assert_close(tokens_to_regions(tok, n_win, rh, rw), x)


def test_layout_refuses_unpadded_maps():
    with pytest.raises(ValueError, match='pad it'):
        regions_to_tokens(torch.randn(1, 7, 8, 4), 2, 1)


def test_block_mask_lists_the_routed_regions():
    r_idx = torch.tensor([[[2, 0], [1, 3], [0, 1], [3, 2]]])
    bm = routed_block_mask(r_idx, region_tokens=6)
    dense = bm.to_dense()[0, 0]  # (P, P) blocks
    expected = torch.zeros(4, 4, dtype=dense.dtype)
    expected[torch.arange(4).unsqueeze(1), r_idx[0]] = 1
    assert torch.equal(dense, expected)


@pytest.mark.parametrize('compiled', [False, True])
@pytest.mark.parametrize('n_win,rh,rw,heads,topk', [(2, 3, 5, 2, 2), (3, 4, 4, 1, 4)])
def test_flex_equals_dense_masked_attention(n_win, rh, rw, heads, topk, compiled):
    torch.manual_seed(0)
    b, d = 2, 8
    q, k, v = (torch.randn(b, n_win * rh, n_win * rw, heads * d) for _ in range(3))
    p = n_win * n_win
    r_idx = torch.randn(b, p, p).topk(topk, dim=-1).indices
    scale = 0.3
    with torch.no_grad():
        out = bra_flex_attention(
            *(regions_to_tokens(t, n_win, heads) for t in (q, k, v)),
            r_idx,
            rh * rw,
            scale=scale,
            compiled=compiled,
        )
    out = tokens_to_regions(out, n_win, rh, rw)
    mask = _routing_mask(r_idx, n_win, rh, rw)
    ref = _attend_masked(q, k, v, mask, heads, scale)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    # the routing matters: all-region attention gives something else
    full = _attend_masked(q, k, v, torch.ones_like(mask), heads, scale)
    assert (full - ref).abs().max() > 1e-2


def test_flex_equals_bra_gather_path():
    """Same q, k, v and routing through BiLevelRoutingAttention's fused gather + SDPA path."""
    from mmattn.models.attentions.bi_level_routing_attention import BiLevelRoutingAttention

    torch.manual_seed(0)
    n_win, rh, rw, heads, topk, c = 3, 4, 5, 2, 3, 16
    op = BiLevelRoutingAttention(c, num_heads=heads, n_win=n_win, topk=topk, fused_attn=True)
    q, k, v = (torch.randn(1, n_win * rh, n_win * rw, c) for _ in range(3))
    to_r = [
        t.view(1, n_win, rh, n_win, rw, c)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(1, n_win * n_win, rh * rw, c)
        for t in (q, k, v)
    ]
    _, r_idx = op.route(to_r[0], to_r[1])
    qr, kr, vr = (t.view(1, n_win * n_win, rh * rw, heads, -1).transpose(2, 3) for t in to_r)
    with torch.no_grad():
        ref = op._attend_fused(qr, kr, vr, r_idx, None)  # (B, P, heads, w2, d)
        out = bra_flex_attention(
            *(regions_to_tokens(t, n_win, heads) for t in (q, k, v)), r_idx, rh * rw, scale=op.scale
        )
    ref = ref.permute(0, 2, 1, 3, 4).reshape_as(out)  # (B, heads, P*w2, d)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_flex_refuses_a_wrong_region_size():
    q = torch.randn(1, 1, 20, 4)
    with pytest.raises(ValueError, match='regions of'):
        bra_flex_attention(q, q, q, torch.zeros(1, 4, 1, dtype=torch.long), 6)
