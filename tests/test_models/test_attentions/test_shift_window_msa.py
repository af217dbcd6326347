"""ShiftWindowMSA against dense attention under an explicit window/region mask."""

import pytest
import torch

from mmattn.models.attentions.shift_window_msa import ShiftWindowMSA


def reference(op, x, hw):
    """Float64 dense attention on the padded, rolled map: token i sees token j only inside
    its window; pieces of a shifted window that come from different map regions get -100."""
    b, n, c = x.shape
    h, w = hw
    wh, ww = op.window_size
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
    shift = op.shift and (op.pad_small_map or min(h, w) > min(wh, ww))
    sh, sw = (wh // 2, ww // 2) if shift else (0, 0)
    img = torch.zeros(b, hp, wp, c, dtype=torch.float64)
    img[:, :h, :w] = x.double().view(b, h, w, c)
    img = torch.roll(img, (-sh, -sw), (1, 2))
    rows, cols = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    win = (rows // wh) * (wp // ww) + cols // ww

    def region(pos, size, win_size, s):
        return 0 if pos < size - win_size else (1 if pos < size - s else 2)

    reg = torch.tensor(
        [
            region(r, hp, wh, sh) * 3 + region(q, wp, ww, sw) if shift else 0
            for r, q in zip(rows.tolist(), cols.tolist())
        ]
    )
    table = op.relative_position_bias_table.double()
    heads, d = op.num_heads, c // op.num_heads
    tokens = img.reshape(b, -1, c)
    qkv = tokens @ op.qkv.weight.double().T + op.qkv.bias.double()
    q, k, v = qkv.reshape(b, -1, 3, heads, d).permute(2, 0, 3, 1, 4)
    logits = (q * op.scale) @ k.transpose(-2, -1)  # (b, heads, M, M)
    dr = (rows[:, None] % wh) - (rows[None, :] % wh) + wh - 1
    dc = (cols[:, None] % ww) - (cols[None, :] % ww) + ww - 1
    logits = logits + table[dr * (2 * ww - 1) + dc].permute(2, 0, 1)
    logits = logits + (reg[:, None] != reg[None, :]).double() * -100.0
    logits = logits.masked_fill(win[:, None] != win[None, :], float('-inf'))
    out = logits.softmax(-1) @ v
    out = out.transpose(1, 2).reshape(b, hp, wp, c)
    out = out @ op.proj.weight.double().T + op.proj.bias.double()
    out = torch.roll(out, (sh, sw), (1, 2))[:, :h, :w]
    return out.reshape(b, n, c)


@pytest.mark.parametrize('hw', [(14, 14), (11, 17), (7, 7), (5, 9)])
@pytest.mark.parametrize('window', [7, (3, 5)])
@pytest.mark.parametrize('shift', [False, True])
@pytest.mark.parametrize('fused', [True, False])
def test_matches_masked_dense_reference(hw, window, shift, fused):
    torch.manual_seed(0)
    op = ShiftWindowMSA(16, 2, window_size=window, shift=shift, fused_attn=fused).eval()
    with torch.no_grad():
        op.relative_position_bias_table.normal_(0, 1)
        op.qkv.bias.normal_(0, 0.5)
    x = torch.randn(2, hw[0] * hw[1], 16)
    with torch.no_grad():
        out = op(x, hw)
    assert out.shape == x.shape
    assert (out.double() - reference(op, x, hw)).abs().max() <= 1e-5


def test_small_map_shift_rule():
    op = ShiftWindowMSA(8, 1, window_size=7, shift=True, pad_small_map=True).eval()
    x = torch.randn(1, 49, 8)
    with torch.no_grad():
        assert (op(x, (7, 7)).double() - reference(op, x, (7, 7))).abs().max() <= 1e-5
        shifted = op(x, (7, 7))
        op.pad_small_map = False  # ImageNet rule: a map that fits one window is not shifted
        assert not torch.allclose(op(x, (7, 7)), shifted)


def test_gradients_and_autocast():
    op = ShiftWindowMSA(16, 2, window_size=(4, 3), shift=True).train()
    x = torch.randn(2, 10 * 9, 16, requires_grad=True)
    op(x, (10, 9)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in op.parameters())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.isfinite(op(x * 10, (10, 9)).float()).all()


def test_shift_mask_is_built_once_per_size_and_reused_exactly():
    from mmattn.models.attentions import shift_window_msa as swm

    args = ((21, 14), (7, 7), (3, 3), torch.device('cpu'))
    first = swm.shift_window_mask(*args)
    assert swm.shift_window_mask(*args) is first  # no rebuild (GPU: ~25 launches a block)
    assert torch.equal(first, swm._build_shift_window_mask(*args))
    other = swm.shift_window_mask((14, 21), (7, 7), (3, 3), torch.device('cpu'))
    assert other.shape == (6, 49, 49) and not torch.equal(other, first)
    # a mask over the size limit is returned but not kept (detection sizes change per image)
    big = swm.shift_window_mask((406, 406), (7, 7), (3, 3), torch.device('cpu'))
    assert big.numel() * 4 > swm._MASKS.max_bytes
    assert swm.shift_window_mask((406, 406), (7, 7), (3, 3), torch.device('cpu')) is not big


def test_cached_mask_from_inference_mode_serves_a_training_step():
    torch.manual_seed(0)
    op = ShiftWindowMSA(16, 2, window_size=(4, 3), shift=True)
    x = torch.randn(2, 13 * 11, 16)
    with torch.inference_mode():
        op.eval()(x, (13, 11))  # builds and caches the mask under inference_mode
    op.train()
    xg = x.clone().requires_grad_(True)
    out = op(xg, (13, 11))
    out.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    with torch.no_grad():
        op.eval()
        assert (op(x, (13, 11)).double() - reference(op, x, (13, 11))).abs().max() <= 1e-5


@pytest.mark.parametrize('hw', [(14, 14), (11, 17), (7, 9), (5, 9), (6, 6)])
@pytest.mark.parametrize('window', [7, (3, 5)])
def test_exportable_shift_equals_eager(hw, window, monkeypatch):
    """The export path (shift rule on tensors) gives the eager op's output on both sides of
    the small-map rule, bitwise in float64."""
    torch.manual_seed(0)
    op = ShiftWindowMSA(16, 2, window_size=window, shift=True).double().eval()
    with torch.no_grad():
        op.relative_position_bias_table.normal_(0, 1)
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
    with torch.no_grad():
        ref = op(x, hw)
        monkeypatch.setattr(torch.compiler, 'is_exporting', lambda: True)
        got = op(x, hw)
    assert torch.equal(got, ref)
