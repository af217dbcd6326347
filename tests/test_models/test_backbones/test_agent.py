"""PVT / Swin skeletons and Agent-PVT / Agent-Swin: strides, arch zoo, plug-in contract,
freezing, norm_eval, with_cp, init_cfg."""

import pytest
import torch
import torch.nn as nn

import mmattn.models  # noqa: F401
from mmattn.models.attentions.agent_attention import AgentAttention
from mmattn.models.attentions.shift_window_msa import ShiftWindowMSA
from mmattn.models.attentions.spatial_reduction_attention import SpatialReductionAttention
from mmattn.models.backbones.pvt import AgentPVT, PyramidVisionTransformerSkeleton
from mmattn.models.backbones.swin import AgentSwin, SwinTransformerSkeleton
from mmattn.registry import MODELS
from mmattn.utils.checkpoint import save_atomic

TINY_PVT = dict(
    embed_dims=[16, 32, 48, 64],
    num_heads=[1, 2, 3, 4],
    mlp_ratios=[2, 2, 2, 2],
    depths=[1, 2, 1, 1],
    sr_ratios=[8, 4, 2, 1],
)
TINY_SWIN = dict(embed_dims=16, depths=[1, 2, 3, 2], num_heads=[1, 2, 2, 4])


def tiny_agent_pvt(**kw):
    torch.manual_seed(0)
    return AgentPVT(arch=TINY_PVT, drop_path_rate=0.0, **kw)


def tiny_agent_swin(**kw):
    torch.manual_seed(0)
    # agent blocks: all of stages 1-2, the first two of stage 3 (Agent-Swin-B's pattern)
    kw.setdefault('attn_cfgs', AgentSwin.layout_cfgs((1, 2, 2, 0), TINY_SWIN['depths']))
    return AgentSwin(arch=TINY_SWIN, drop_path_rate=0.0, **kw)


@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_agent_pvt_strides_and_channels(hw):
    model = tiny_agent_pvt(agent_shapes=[(4, 4), (4, 4), (5, 5), (3, 3)]).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    assert [o.shape[1] for o in outs] == [16, 32, 48, 64]
    for i, o in enumerate(outs):
        stride = 4 * 2**i
        # PVT floors (official conv patch embedding without padding)
        assert o.shape[2:] == (hw[0] // stride, hw[1] // stride)


@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_agent_swin_strides_and_channels(hw):
    model = tiny_agent_swin(agent_shapes=[(3, 3), (4, 4), (7, 7), (7, 7)]).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128]
    for i, o in enumerate(outs):
        stride = 4 * 2**i
        # Swin pads (ceil), as the dense official code
        assert o.shape[2:] == (-(-hw[0] // stride), -(-hw[1] // stride))


def test_swin_layouts():
    agent, window = dict(type='AgentAttention'), dict(type='ShiftWindowMSA')
    assert AgentSwin.layout_cfgs((2, 2, 2, 0), [2, 2, 18, 2]) == [
        [agent] * 2,
        [agent] * 2,
        [agent] * 2 + [window] * 16,
        [window] * 2,
    ]
    model = tiny_agent_swin()
    kinds = [[type(b.attn).__name__[0] for b in layer.blocks] for layer in model.layers]
    assert kinds == [['A'], ['A', 'A'], ['A', 'A', 'S'], ['S', 'S']]
    # agent blocks are global: no window; odd window blocks shift, even ones do not
    assert [b.attn.shift for b in model.layers[3].blocks] == [False, True]
    assert model.layers[2].blocks[2].attn.shift is False
    # official agent counts per stage and pretrained bias sizes (224 input: 56/28/14/7)
    assert model.layers[0].blocks[0].attn.ah_bias.shape == (1, 1, 9, 56, 1)
    assert model.layers[2].blocks[0].attn.an_bias.shape == (2, 49, 7, 7)
    assert model.layers[2].blocks[0].attn.ha_bias.shape == (1, 2, 14, 1, 49)
    # a custom arch defaults to agent attention in every stage but the last
    kinds = [
        [type(b.attn).__name__[0] for b in layer.blocks]
        for layer in AgentSwin(arch=TINY_SWIN).layers
    ]
    assert kinds == [['A'], ['A', 'A'], ['A', 'A', 'A'], ['S', 'S']]


@pytest.mark.parametrize(
    'cls,arch,params',
    [
        (AgentPVT, 't', 11.06),
        (AgentPVT, 's', 20.12),
        (AgentPVT, 'm', 35.41),
        (AgentPVT, 'l', 48.23),
        (AgentSwin, 't', 28.14),
        (AgentSwin, 's', 48.90),
        (AgentSwin, 'b', 87.07),
    ],
)
def test_arch_zoo_param_counts(cls, arch, params):
    """Backbone parameters (the paper's 11.6/20.6/35.9/48.7M and 29/50/88M include the
    ImageNet classifier: 0.51M for PVT, 0.77M/1.03M for Swin-T,S/B)."""
    model = cls(arch=arch)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(n - params) < 0.01, n


def test_official_agent_layout():
    pvt = AgentPVT(arch='t')
    ops = [blk.attn for layer in pvt.layers for blk in layer.blocks]
    assert all(isinstance(op, AgentAttention) for op in ops)
    assert [pvt.layers[i].blocks[0].attn.agent_num for i in range(4)] == [9, 16, 49, 49]
    assert [pvt.layers[i].pos_embed.shape[1] for i in range(4)] == [3136, 784, 196, 49]
    for arch, pattern in [
        ('tiny', ['AA', 'AA', 'A' * 6, 'BB']),
        ('small', ['AA', 'AA', 'B' * 18, 'BB']),
        ('base', ['AA', 'AA', 'AA' + 'B' * 16, 'BB']),
    ]:  # AAAB, AABB, AAMB2
        cfgs = AgentSwin.layout_cfgs(
            AgentSwin.official_layouts[arch], AgentSwin.arch_zoo[arch]['depths']
        )
        letters = [
            ''.join('A' if c['type'] == 'AgentAttention' else 'B' for c in stage) for stage in cfgs
        ]
        assert letters == pattern, arch
    swin = AgentSwin(arch='t')  # the built model follows its table
    letters = [
        ''.join('A' if isinstance(b.attn, AgentAttention) else 'B' for b in layer.blocks)
        for layer in swin.layers
    ]
    assert letters == ['AA', 'AA', 'A' * 6, 'BB']
    assert swin.layers[3].blocks[1].attn.window_size == (7, 7)


def test_bad_arch_messages():
    with pytest.raises(ValueError, match='choose from'):
        AgentPVT(arch='huge')
    with pytest.raises(ValueError, match='choose from'):
        AgentSwin(arch='xl')
    with pytest.raises(ValueError, match='missing keys'):
        PyramidVisionTransformerSkeleton(arch=dict(embed_dims=[8]))
    with pytest.raises(KeyError, match='unknown'):
        SwinTransformerSkeleton(arch=TINY_SWIN, attn_cfgs=dict(type='NoSuchAttention'))


@MODELS.register_module()
class _RecordingAttention(nn.Module):
    """A user op that records which stage facts the skeleton passed."""

    def __init__(
        self,
        embed_dims,
        num_heads,
        qkv_bias,
        qk_scale,
        attn_drop_rate,
        proj_drop_rate,
        pretrain_hw,
        block_index,
        scale=1.0,
    ):
        super().__init__()
        self.facts = dict(
            embed_dims=embed_dims,
            num_heads=num_heads,
            pretrain_hw=pretrain_hw,
            block_index=block_index,
            scale=scale,
        )
        self.lin = nn.Linear(embed_dims, embed_dims)

    def forward(self, x, hw_shape):
        return self.lin(x) * self.facts['scale']


def test_pvt_plugin_contract():
    model = PyramidVisionTransformerSkeleton(
        arch=TINY_PVT,
        drop_path_rate=0.0,
        attn_cfgs=[
            dict(type='_RecordingAttention', scale=2.0),
            dict(type='SpatialReductionAttention'),
            dict(type='AgentAttention', agent_num=4),
            dict(type='mmattn.ShiftWindowMSA', window_size=(3, 2)),
        ],
    )
    ops = [[blk.attn for blk in layer.blocks] for layer in model.layers]
    assert ops[0][0].facts == dict(
        embed_dims=16, num_heads=1, pretrain_hw=(56, 56), block_index=0, scale=2.0
    )
    assert isinstance(ops[1][0], SpatialReductionAttention) and ops[1][0].sr_ratio == 4
    assert ops[2][0].pretrain_hw == (14, 14) and ops[2][0].agent_num == 4
    assert isinstance(ops[3][0], ShiftWindowMSA)
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 100, 70))
    assert [o.shape[1] for o in outs] == [16, 32, 48, 64]
    # default op: PVT's spatial-reduction attention with the arch's sr ratios
    default = PyramidVisionTransformerSkeleton(arch=TINY_PVT)
    assert [layer.blocks[0].attn.sr_ratio for layer in default.layers] == [8, 4, 2, 1]


def test_swin_plugin_contract():
    rec, win = dict(type='_RecordingAttention'), dict(type='ShiftWindowMSA', window_size=(4, 6))
    model = SwinTransformerSkeleton(
        arch=TINY_SWIN,
        attn_cfgs=[rec, win, [rec, win, win], dict(type='AgentAttention')],
        pretrain_img_size=(224, 160),
    )
    ops = [[blk.attn for blk in layer.blocks] for layer in model.layers]
    assert ops[0][0].facts['pretrain_hw'] == (56, 40)
    assert [op.shift for op in ops[1]] == [False, True]
    assert ops[2][1].window_size == (4, 6) and ops[2][1].shift
    assert ops[3][0].pretrain_hw == (7, 5)
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 90, 75))
    assert [o.shape[2:] for o in outs] == [(23, 19), (12, 10), (6, 5), (3, 3)]


def test_out_indices():
    model = tiny_agent_swin(out_indices=(1, 3)).eval()
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm3')
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    with torch.no_grad():
        outs = tiny_agent_pvt(out_indices=(2,)).eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [48]


@pytest.mark.parametrize('build', [tiny_agent_pvt, tiny_agent_swin])
def test_frozen_stages(build):
    model = build(frozen_stages=2)
    model.train()
    frozen = list(model.layers[0].blocks.parameters()) + list(model.layers[1].blocks.parameters())
    assert all(not p.requires_grad for p in frozen)
    assert not model.layers[1].blocks.training and model.layers[2].training
    assert all(p.requires_grad for p in model.layers[2].blocks.parameters())
    if isinstance(model, AgentPVT):
        assert not model.layers[0].pos_embed.requires_grad
        assert model.layers[2].pos_embed.requires_grad
    else:
        assert not model.patch_embed.proj.weight.requires_grad
        assert not model.norm1.weight.requires_grad and model.norm2.weight.requires_grad
        # the merging into stage 2 computes stage 2: not frozen; the one into stage 1 is
        assert not model.layers[0].downsample.reduction.weight.requires_grad
        assert model.layers[1].downsample.reduction.weight.requires_grad


@pytest.mark.parametrize('build', [tiny_agent_pvt, tiny_agent_swin])
def test_norm_eval_leaves_layer_norms_alone(build):
    """norm_eval freezes BatchNorm statistics; LayerNorm has none, so in these LN-only
    backbones it changes nothing (documented)."""
    model = build(norm_eval=True)
    model.train()
    assert model.training
    assert all(m.training for m in model.modules() if isinstance(m, nn.LayerNorm))


@pytest.mark.parametrize('build', [tiny_agent_pvt, tiny_agent_swin])
def test_with_cp_same_output_and_grads(build):
    ref, ckpt = build(), build(with_cp=True)
    ckpt.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 80)
    out_ref, out_cp = ref(x), ckpt(x)
    for a, b in zip(out_ref, out_cp):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in out_ref).backward()
    sum(o.sum() for o in out_cp).backward()
    for (name, p), q in zip(ref.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_drop_path_schedule():
    model = AgentPVT(arch=TINY_PVT, drop_path_rate=0.4)
    rates = [
        getattr(blk.drop_path, 'drop_prob', 0.0) for layer in model.layers for blk in layer.blocks
    ]
    assert rates[0] == 0 and abs(rates[-1] - 0.4) < 1e-6 and rates == sorted(rates)


def test_pos_embed_resized_to_input():
    model = tiny_agent_pvt()
    stage = model.layers[1]
    assert stage.resized_pos_embed((28, 28)) is stage.pos_embed
    assert stage.resized_pos_embed((10, 13)).shape == (1, 130, 32)


@pytest.mark.parametrize('build', [tiny_agent_pvt, tiny_agent_swin])
def test_init_cfg_pretrained(build, tmp_path):
    src = build()
    path = str(tmp_path / 'converted.pth')
    save_atomic({'state_dict': src.state_dict(), 'meta': {}}, path)
    torch.manual_seed(1)
    dst = build(init_cfg=dict(type='Pretrained', checkpoint=path))
    dst.init_weights()
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_registered_and_scoped_build():
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmattn'):
        model = MODELS.build(dict(type='AgentSwin', arch=TINY_SWIN))
    assert isinstance(model, AgentSwin)
