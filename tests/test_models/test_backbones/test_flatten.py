"""FLattenPVT / FLattenSwin: shapes/strides, op layouts, freezing, norm_eval, with_cp, params."""
import pytest
import torch

from mmattn.models.attentions.focused_linear_attention import FocusedLinearAttention
from mmattn.models.attentions.shift_window_msa import ShiftWindowMSA
from mmattn.models.attentions.spatial_reduction_attention import SpatialReductionAttention
from mmattn.models.backbones.flatten import FLattenPVT, FLattenSwin
from mmattn.registry import MODELS

PVT_TINY = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], mlp_ratios=[2, 2, 2, 2],
                depths=[1, 1, 2, 1], sr_ratios=[8, 4, 2, 1])
SWIN_TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])


def _pvt(**kw):
    torch.manual_seed(0)
    return FLattenPVT(arch=PVT_TINY, **kw)


def _swin(**kw):
    torch.manual_seed(0)
    return FLattenSwin(arch=SWIN_TINY, **kw)


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
    assert all(isinstance(layer.blocks[0].attn, FocusedLinearAttention)
               for layer in _pvt().layers)  # default: the paper's op everywhere
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


@pytest.mark.parametrize('build', [_pvt, _swin])
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


@pytest.mark.parametrize('build', [_pvt, _swin])
def test_with_cp_same_output_and_grads(build):
    x = torch.randn(1, 3, 45, 61)
    ref, cp_model = build(drop_path_rate=0.), build(drop_path_rate=0., with_cp=True)
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
    m = _pvt(out_indices=(1, 3), drop_path_rate=0.)
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
