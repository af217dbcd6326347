"""FLattenPVT / FLattenPVTv2 / FLattenSwin: shapes/strides, op layouts, freezing, norm_eval,
with_cp, params, and the PVT v2 bricks (overlapping patch embedding, conv FFN) against naive
references."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmattn.models.attentions.focused_linear_attention import FocusedLinearAttention
from mmattn.models.attentions.shift_window_msa import ShiftWindowMSA
from mmattn.models.attentions.spatial_reduction_attention import SpatialReductionAttention
from mmattn.models.backbones.flatten import FLattenPVT, FLattenPVTv2, FLattenSwin
from mmattn.models.layers.block import Mlp
from mmattn.registry import MODELS

PVT_TINY = dict(
    embed_dims=[16, 32, 48, 64],
    num_heads=[1, 2, 3, 4],
    mlp_ratios=[2, 2, 2, 2],
    depths=[1, 1, 2, 1],
    sr_ratios=[8, 4, 2, 1],
)
SWIN_TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])


def _pvt(**kw):
    torch.manual_seed(0)
    return FLattenPVT(arch=PVT_TINY, **kw)


def _swin(**kw):
    torch.manual_seed(0)
    return FLattenSwin(arch=SWIN_TINY, **kw)


def _pvtv2(**kw):
    torch.manual_seed(0)
    return FLattenPVTv2(**dict(dict(arch=PVT_TINY), **kw))


@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_pvt_strides_and_channels(hw):
    m = _pvt().eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *hw))
    size = (hw[0] // 4, hw[1] // 4)  # non-overlapping patches floor like the official
    for i, o in enumerate(outs):
        if i:
            size = (size[0] // 2, size[1] // 2)
        assert o.shape == (1, PVT_TINY['embed_dims'][i], *size)
        assert torch.isfinite(o).all()


@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_swin_strides_and_channels(hw):
    m = _swin().eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *hw))
    size = (-(-hw[0] // 4), -(-hw[1] // 4))  # padded to the patch, merging pads to even
    for i, o in enumerate(outs):
        if i:
            size = (-(-size[0] // 2), -(-size[1] // 2))
        assert o.shape == (1, 16 * 2**i, *size)
        assert torch.isfinite(o).all()


def test_pvt_layouts_and_pos_encoding_sizes():
    flatten = dict(type='FocusedLinearAttention', sr_ratio=1)
    m = _pvt(attn_cfgs=[flatten] * 3 + [dict(type='SpatialReductionAttention')])
    for i, hw in enumerate([56, 28, 14]):
        attn = m.layers[i].blocks[0].attn
        assert isinstance(attn, FocusedLinearAttention)
        assert attn.sr_ratio == 1  # official PVT_LA_SR_RATIOS = 1111, not the SRA ratios
        assert attn.positional_encoding.shape == (1, hw * hw, PVT_TINY['embed_dims'][i])
    last = m.layers[3].blocks[0].attn
    assert isinstance(last, SpatialReductionAttention) and last.sr_ratio == 1
    # an op config without sr_ratio takes the arch's (8/4/2/1), like any PVT op
    m = _pvt(attn_cfgs=dict(type='FocusedLinearAttention'), pretrain_img_size=(256, 192))
    attn = m.layers[0].blocks[0].attn
    assert attn.sr_ratio == 8 and attn.positional_encoding.shape == (1, 8 * 6, 16)
    assert all(
        isinstance(layer.blocks[0].attn, FocusedLinearAttention) for layer in _pvt().layers
    )  # default: the paper's op everywhere
    with pytest.raises(KeyError, match='unknown'):
        _pvt(attn_cfgs=dict(type='NoSuchAttention'))
    m = _pvt(attn_cfgs=dict(type='SpatialReductionAttention'))
    assert isinstance(m.layers[0].blocks[0].attn, SpatialReductionAttention)


def test_swin_layout_global_linear_and_windows():
    m = _swin()
    for i, hw in enumerate([56, 28]):
        for blk in m.layers[i].blocks:
            assert isinstance(blk.attn, FocusedLinearAttention)  # whole map, no shift
            assert blk.attn.positional_encoding.shape == (1, hw * hw, 16 * 2**i)
    for i in (2, 3):
        shifts = [blk.attn.shift for blk in m.layers[i].blocks]
        assert all(isinstance(blk.attn, ShiftWindowMSA) for blk in m.layers[i].blocks)
        assert shifts == [False, True] and m.layers[i].blocks[0].attn.window_size == (7, 7)


def test_registry_and_full_size_params():
    # Official totals minus the 1000-class head (and Swin's final norm, replaced by four
    # output norms): FLatten-PVT-T 12.2M, FLatten-Swin-T 29M in the paper / official code.
    pvt = MODELS.build(dict(type='FLattenPVT', arch='t'))
    n = sum(p.numel() for p in pvt.parameters())
    assert n == 12150504 - 513000 - 1024
    swin = MODELS.build(dict(type='mmattn.FLattenSwin', arch='tiny'))
    n = sum(p.numel() for p in swin.parameters())
    # official state dict 29240404 includes 48020 buffer entries (bias index, shift masks)
    assert n == 29240404 - 48020 - 769000 - 1536 + 2 * (96 + 192 + 384 + 768)
    with torch.no_grad():
        outs = swin.eval()(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == [96, 192, 384, 768]


@pytest.mark.parametrize('build', [_pvt, _pvtv2, _swin])
def test_frozen_stages_and_norm_eval(build):
    m = build(frozen_stages=2, norm_eval=True)
    m.train()
    for i, layer in enumerate(m.layers):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in layer.blocks.parameters())
    # norm_eval freezes BatchNorm statistics: these LN-only backbones are unaffected
    norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.LayerNorm)]
    assert norms and all(n.training for n in norms if n.weight.requires_grad)
    assert m.layers[3].training


@pytest.mark.parametrize('build', [_pvt, _pvtv2, _swin])
def test_with_cp_same_output_and_grads(build):
    x = torch.randn(1, 3, 45, 61)
    ref, cp_model = build(drop_path_rate=0.0), build(drop_path_rate=0.0, with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    outs_a = ref.train()(x.clone().requires_grad_())
    outs_b = cp_model.train()(x.clone().requires_grad_())
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in outs_a).backward()
    sum(o.sum() for o in outs_b).backward()
    for (n, pa), pb in zip(ref.named_parameters(), cp_model.parameters()):
        if pa.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5, msg=n)


def test_out_indices_and_every_parameter_trains():
    m = _pvt(out_indices=(1, 3), drop_path_rate=0.0)
    outs = m(torch.randn(1, 3, 64, 80))
    assert [o.shape[1] for o in outs] == [32, 64]
    sum(o.square().mean() for o in outs).backward()
    # positional encodings are zero at init and the scale is shared: every one gets a grad
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing


def test_pretrained_init_cfg(tmp_path):
    src = _pvt()
    path = tmp_path / 'flatten_pvt.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    dst = _pvt(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    dst.init_weights()
    for (n, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), n


# ---------------------------------------------------------------------------- FLatten-PVTv2
#: official ``flatten_pvt_v2_b{0..4}`` parameters (built from LeapLabTHU/FLatten-Transformer
#: ``models/flatten_pvt_v2.py`` outside the repo) minus the 1000-class head
#: (``embed_dims[3] * 1000 + 1000``); the backbone has nothing the classifier lacks.
PVTV2_PARAMS = dict(
    b0=3594824 - 257000,
    b1=12931240 - 513000,
    b2=22548264 - 513000,
    b3=38273832 - 513000,
    b4=51836968 - 513000,
)


@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_pvtv2_strides_and_channels(hw):
    m = _pvtv2().eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *hw))
    size = (-(-hw[0] // 4), -(-hw[1] // 4))  # overlapping, padded convs: ceil
    for i, o in enumerate(outs):
        if i:
            size = (-(-size[0] // 2), -(-size[1] // 2))
        assert o.shape == (1, PVT_TINY['embed_dims'][i], *size)
        assert torch.isfinite(o).all()
    # tiny inputs work too: a padded 7x7/4 conv never runs out of image
    with torch.no_grad():
        assert [o.shape[2:] for o in m(torch.randn(1, 3, 5, 9))] == [(2, 3), (1, 2), (1, 1), (1, 1)]


@pytest.mark.parametrize('arch', sorted(PVTV2_PARAMS))
def test_pvtv2_official_sizes_and_params(arch):
    m = MODELS.build(dict(type='mmattn.FLattenPVTv2', arch=arch))  # built, not run: < 1 s
    assert sum(p.numel() for p in m.parameters()) == PVTV2_PARAMS[arch]
    dims = [32, 64, 160, 256] if arch == 'b0' else [64, 128, 320, 512]
    depths = dict(
        b0=[2, 2, 2, 2], b1=[2, 2, 2, 2], b2=[3, 4, 6, 3], b3=[3, 4, 18, 3], b4=[3, 8, 27, 3]
    )[arch]
    assert m.embed_dims == dims and [len(layer.blocks) for layer in m.layers] == depths
    for i, layer in enumerate(m.layers):
        proj = layer.patch_embed.proj
        assert (proj.kernel_size, proj.stride, proj.padding) == (
            ((7, 7), (4, 4), (3, 3)) if i == 0 else ((3, 3), (2, 2), (1, 1))
        )
        assert layer.pos_embed is None and layer.norm.eps == 1e-6
        assert layer.patch_embed.norm.eps == 1e-5
        blk = layer.blocks[0]
        assert blk.norm1.eps == 1e-6
        assert blk.mlp.fc1.out_features == dims[i] * [8, 8, 4, 4][i]
        assert blk.mlp.dwconv.kernel_size == (3, 3) and not blk.mlp.dw_residual
        attn = blk.attn  # official LLLL with PVT_LA_SR_RATIOS = 1111: full-resolution keys
        assert isinstance(attn, FocusedLinearAttention) and attn.sr_ratio == 1
        assert attn.num_heads == [1, 2, 5, 8][i] and attn.focusing_factor == 3
        assert attn.positional_encoding.shape == (1, (56 >> i) ** 2, dims[i])


def test_pvtv2_b0_full_size_forward():
    m = FLattenPVTv2('b0')
    m.init_weights()
    with torch.no_grad():
        outs = m.eval()(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (32, 56, 56),
        (64, 28, 28),
        (160, 14, 14),
        (256, 7, 7),
    ]
    for o in outs:  # each output went through its stage's LayerNorm (unit gain, zero bias)
        tokens = o.flatten(2).transpose(1, 2)
        torch.testing.assert_close(
            tokens.mean(-1), torch.zeros_like(tokens[..., 0]), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            tokens.var(-1, unbiased=False), torch.ones_like(tokens[..., 0]), atol=1e-3, rtol=0
        )


def test_pvtv2_official_init():
    m = _pvtv2(arch='b0')
    m.init_weights()
    for name, conv in [
        ('patch', m.layers[0].patch_embed.proj),
        ('ffn dwconv', m.layers[1].blocks[0].mlp.dwconv),
        ('attn dwc', m.layers[2].blocks[0].attn.dwc),
    ]:
        fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
        std = conv.weight.std().item()
        assert abs(std / math.sqrt(2.0 / fan_out) - 1) < 0.15, (name, std)
        assert conv.bias.abs().sum() == 0, name
    fc1 = m.layers[3].blocks[1].mlp.fc1
    assert abs(fc1.weight.std().item() - 0.02) < 0.002 and fc1.bias.abs().sum() == 0


def _naive_dwconv3x3(h, weight, bias, hw):
    """Depthwise 3x3 conv (zero padding 1) of tokens ``(B, N, C)`` by explicit shifts."""
    B, N, C = h.shape
    H, W = hw
    grid = h.reshape(B, H, W, C)
    padded = torch.zeros(B, H + 2, W + 2, C, dtype=h.dtype)
    padded[:, 1:-1, 1:-1] = grid
    out = bias.reshape(1, 1, 1, C).expand(B, H, W, C).clone()
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy : dy + H, dx : dx + W] * weight[:, 0, dy, dx]
    return out.reshape(B, N, C)


@pytest.mark.parametrize('dw_residual', [False, True])
def test_conv_ffn_equals_naive_reference(dw_residual):
    torch.manual_seed(0)
    mlp = Mlp(6, 10, dw_kernel_size=3, dw_residual=dw_residual).double().eval()
    for p in mlp.parameters():
        torch.nn.init.normal_(p)
    hw = (5, 7)
    x = torch.randn(2, 35, 6, dtype=torch.float64)
    h = x @ mlp.fc1.weight.T + mlp.fc1.bias
    local = _naive_dwconv3x3(h, mlp.dwconv.weight, mlp.dwconv.bias, hw)
    g = h + local if dw_residual else local  # Shunted adds, PVT v2 replaces
    ref = F.gelu(g) @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(mlp(x, hw), ref, rtol=1e-12, atol=1e-12)
    # the neighbourhood is really 2-D: a token's output moves with the token below it
    x2 = x.clone()
    x2[:, 1 * 7 + 3] += 1.0
    changed = (mlp(x2, hw) - mlp(x, hw)).abs().amax(dim=(0, 2)) > 0
    assert set(changed.nonzero().flatten().tolist()) == {
        r * 7 + c for r in (0, 1, 2) for c in (2, 3, 4)
    }


def test_pvtv2_patch_embedding_overlaps():
    m = _pvtv2(out_indices=(0,)).eval()
    embed = m.layers[0].patch_embed
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, hw = embed(x)
        x2 = x.clone()
        x2[..., 3, 3] += 1.0  # inside the 7x7 windows of tokens 0 and 1 along each axis
        b, _ = embed(x2)
    assert hw == (8, 8)
    moved = ((a - b).abs().amax(-1) > 0).reshape(8, 8).nonzero().tolist()
    assert moved == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # and the conv is the padded 7x7 stride-4 one of PVT v2
    ref = F.conv2d(x, embed.proj.weight, embed.proj.bias, stride=4, padding=3)
    ref = F.layer_norm(
        ref.flatten(2).transpose(1, 2), (16,), embed.norm.weight, embed.norm.bias, 1e-5
    )
    torch.testing.assert_close(a, ref)


def test_pvtv2_every_parameter_trains_and_layout_swaps():
    m = _pvtv2(out_indices=(1, 3), drop_path_rate=0.0)
    outs = m(torch.randn(1, 3, 64, 80))
    assert [o.shape[1] for o in outs] == [32, 64]
    sum(o.square().mean() for o in outs).backward()
    assert not [n for n, p in m.named_parameters() if p.grad is None]
    # PVT v2's own spatial-reduction attention is a config away (it gets the arch's 8/4/2/1)
    m = _pvtv2(attn_cfgs=dict(type='SpatialReductionAttention'))
    assert [layer.blocks[0].attn.sr_ratio for layer in m.layers] == [8, 4, 2, 1]
    # the v2 options are the skeleton's: FLatten-PVT with them on has FLatten-PVTv2's keys
    v1 = FLattenPVT(
        arch=PVT_TINY,
        patch_kernel_sizes=(7, 3, 3, 3),
        use_abs_pos_embed=False,
        use_conv_ffn=True,
        norm_after_stage=True,
    )
    assert {k: v.shape for k, v in v1.state_dict().items()} == {
        k: v.shape for k, v in _pvtv2().state_dict().items()
    }
    with pytest.raises(ValueError, match='smaller than its stride'):
        _pvtv2(patch_kernel_sizes=(3, 3, 3, 3))
    with pytest.raises(ValueError, match='one entry per stage'):
        _pvtv2(patch_kernel_sizes=(7, 3, 3))
