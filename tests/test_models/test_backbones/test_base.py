"""The conventions every backbone shares (backbones/base.py), checked family by family.

frozen_stages (k freezes the stem and the first k stages), norm_eval (BatchNorm statistics),
out_indices pruning (a subset state dict; a full checkpoint still loads), attn_cfgs (any op
in any skeleton), the input-size policy at odd sizes, and init only in init_weights() with
an op's own init respected.
"""

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from torch.nn.modules.batchnorm import _BatchNorm

import mmattn.models  # noqa: F401
from mmattn.registry import MODELS, build_module

_PVT = dict(
    embed_dims=[16, 32, 48, 64],
    num_heads=[2, 2, 4, 4],
    mlp_ratios=[2, 2, 2, 2],
    depths=[1, 1, 1, 1],
    sr_ratios=[8, 4, 2, 1],
)
_SWIN = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4])

#: family -> (config, stem prefixes, prefixes of what computes stage 0, of stage 1)
FAMILIES = {
    'AgentPVT': (
        dict(arch=_PVT),
        ['layers.0.patch_embed.', 'layers.0.pos_embed'],
        ['layers.0.'],
        ['layers.1.'],
    ),
    'FLattenPVT': (
        dict(arch=_PVT),
        ['layers.0.patch_embed.', 'layers.0.pos_embed'],
        ['layers.0.'],
        ['layers.1.'],
    ),
    'FLattenPVTv2': (dict(arch=_PVT), ['layers.0.patch_embed.'], ['layers.0.'], ['layers.1.']),
    'EAPVT': (
        dict(arch=_PVT, attn_cfgs=dict(type='MultiHeadExternalAttention', num_slots=8)),
        ['layers.0.patch_embed.', 'layers.0.pos_embed'],
        ['layers.0.'],
        ['layers.1.'],
    ),
    'AgentSwin': (
        dict(arch=_SWIN),
        ['patch_embed.'],
        ['layers.0.blocks.', 'norm0.'],
        ['layers.0.downsample.', 'layers.1.blocks.', 'norm1.'],
    ),
    'FLattenSwin': (
        dict(arch=_SWIN),
        ['patch_embed.'],
        ['layers.0.blocks.', 'norm0.'],
        ['layers.0.downsample.', 'layers.1.blocks.', 'norm1.'],
    ),
    'BiFormer': (
        dict(
            arch=dict(embed_dims=[32, 64, 96, 128], depths=[1, 1, 1, 1], topks=[1, 4, 16, -2]),
            n_win=2,
        ),
        ['stem.'],
        ['stages.0.', 'norm0.'],
        ['downsamples.0.', 'stages.1.', 'norm1.'],
    ),
    'ShuntedTransformer': (
        dict(arch=dict(_PVT, num_convs=1)),
        ['patch_embeds.0.'],
        ['patch_embeds.0.', 'stages.0.', 'norm1.'],
        ['patch_embeds.1.', 'stages.1.', 'norm2.'],
    ),
}


def build(family, **kw):
    torch.manual_seed(0)
    cfg = dict(FAMILIES[family][0], drop_path_rate=0.0, **kw)
    return build_module(dict(type=family, **cfg))


def _frozen(model):
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def _under(model, prefixes):
    return {n for n, _ in model.named_parameters() if n.startswith(tuple(prefixes))}


@pytest.mark.parametrize('family', list(FAMILIES))
def test_frozen_stages_stem_then_k_stages(family):
    _, stem, stage0, stage1 = FAMILIES[family]
    assert not _frozen(build(family).train())
    model = build(family, frozen_stages=0).train()
    assert _frozen(model) == _under(model, stem)
    model = build(family, frozen_stages=1).train()
    assert _frozen(model) == _under(model, stem + stage0)
    model = build(family, frozen_stages=2).train()
    assert _frozen(model) == _under(model, stem + stage0 + stage1)
    # frozen parts stay in eval mode (dropout, BN) after train()
    frozen_modules = [
        m
        for n, m in model.named_modules()
        if n and n.startswith(tuple(stem + stage0)) and list(m.parameters())
    ]
    assert frozen_modules and not any(m.training for m in frozen_modules)
    # and get no gradient
    sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n in _frozen(model))


@pytest.mark.parametrize('family', list(FAMILIES))
def test_norm_eval_freezes_batchnorm_statistics_only(family):
    model = build(family, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert all(not m.training for m in bns)
    assert all(m.training for m in model.modules() if isinstance(m, nn.LayerNorm))
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, bns))
    if family in ('BiFormer', 'ShuntedTransformer'):  # BN in the stem: it does something
        assert bns
        model = build(family, norm_eval=False).train()
        model(torch.randn(2, 3, 64, 64))
        bn = next(m for m in model.modules() if isinstance(m, _BatchNorm))
        assert bn.training and bn.running_mean.abs().sum() > 0


@pytest.mark.parametrize('family', list(FAMILIES))
def test_stages_after_the_last_output_are_not_built(family, tmp_path):
    full = build(family).eval()
    pruned = build(family, out_indices=(1,)).eval()
    full_sd, pruned_sd = full.state_dict(), pruned.state_dict()
    assert set(pruned_sd) < set(full_sd)
    assert not any(
        k.startswith(
            (
                'layers.2.',
                'stages.2.',
                'norm3.',
                'patch_embeds.2.',
                'downsamples.1.',
                'layers.1.downsample.',
            )
        )
        for k in pruned_sd
    )
    # a full checkpoint loads the way MMEngine's Pretrained does: the extra keys reported
    path = str(tmp_path / 'full.pth')
    torch.save({'state_dict': full_sd}, path)
    loaded = build(family, out_indices=(1,), init_cfg=dict(type='Pretrained', checkpoint=path))
    logger = MMLogger.get_current_instance()
    messages = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        loaded.init_weights()
    finally:
        logger.removeHandler(handler)
    assert any('unexpected key' in m for m in messages), messages
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        (out,) = loaded.eval()(x)
        torch.testing.assert_close(out, full(x)[1])
    # every built parameter is used (DDP needs no find_unused_parameters)
    pruned.train()
    sum(o.sum() for o in pruned(x)).backward()
    assert all(p.grad is not None for p in pruned.parameters())


class _ListHandler:
    """A logging handler that keeps the messages (MMLogger is a logging.Logger)."""

    def __new__(cls, messages):
        import logging

        class Handler(logging.Handler):
            def emit(self, record):
                messages.append(record.getMessage())

        return Handler()


@pytest.mark.parametrize(
    'family,op',
    [
        ('AgentPVT', dict(type='mmattn.ShuntedSelfAttention')),
        ('ShuntedTransformer', dict(type='AgentAttention')),
        ('BiFormer', dict(type='FocusedLinearAttention')),
        ('AgentSwin', dict(type='SpatialReductionAttention', sr_ratio=2)),
        ('FLattenPVT', dict(type='BiLevelRoutingAttention', n_win=2, topk=2)),
        ('EAPVT', dict(type='GlobalAttentionLePE')),
    ],
)
def test_any_op_in_any_skeleton(family, op):
    model = build(family, attn_cfgs=op)
    name = op['type'].split('.')[-1]
    ops = [m for m in model.modules() if type(m).__name__ == name]
    assert len(ops) == sum(model.arch['depths'])
    if family == 'AgentPVT':  # stage facts reach the op that declares them, and only those
        assert [o.sr_ratio for o in ops] == [8, 4, 2, 1]
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 72))
    assert len(outs) == 4 and all(torch.isfinite(o).all() for o in outs)


def test_attn_cfgs_per_stage_and_per_block_and_errors():
    agent, sra = dict(type='AgentAttention'), dict(type='SpatialReductionAttention')
    arch = dict(_PVT, depths=[1, 2, 1, 1])
    model = build('AgentPVT', arch=arch, attn_cfgs=[agent, [sra, agent], sra, agent])
    kinds = [[type(b.attn).__name__[0] for b in layer.blocks] for layer in model.layers]
    assert kinds == [['A'], ['S', 'A'], ['S'], ['A']]
    with pytest.raises(ValueError, match='4 stages'):
        build('AgentPVT', attn_cfgs=[agent, agent])
    with pytest.raises(ValueError, match='2 blocks of stage 1'):
        build('AgentPVT', arch=arch, attn_cfgs=[agent, [agent], agent, agent])
    with pytest.raises(TypeError, match='"type"'):
        build('AgentPVT', attn_cfgs=[agent, 'A', agent, agent])


def test_fused_attn_switch_reaches_every_op_that_has_one():
    model = build('BiFormer', fused_attn=True)
    assert all(m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn') and m is not model)
    # None: each op's own default (BRA by device: lean loop on CPU, SDPA on CUDA; global SDPA)
    model = build('BiFormer')
    assert [s[0].attn.fused_attn for s in model.stages] == [None, None, None, True]


def test_arch_errors_are_uniform():
    for family in FAMILIES:
        cls = MODELS.get(family)
        with pytest.raises(ValueError, match='choose from'):
            cls(arch='huge')
        with pytest.raises(ValueError, match='missing keys'):
            cls(arch=dict(depths=[1, 1, 1, 1]))
        with pytest.raises(ValueError, match='unknown keys'):
            cls(arch=dict(FAMILIES[family][0]['arch'], depth=[1, 1, 1, 1]))


#: family -> output size of an H x W input at stage i (the documented policy)
POLICY = {
    'AgentPVT': lambda s, i: s // 4 // 2**i,  # floor, as the official conv patch embeds
    'FLattenPVTv2': lambda s, i: -(-s // (4 * 2**i)),  # overlapping convs with padding k // 2
    'AgentSwin': lambda s, i: -(-s // (4 * 2**i)),  # pad to the patch, merging pads to even
    'BiFormer': lambda s, i: -(-s // (4 * 2**i)),  # stride-2 convs with padding 1
    'ShuntedTransformer': lambda s, i: -(-((s + 1) // 2 // 2) // 2**i),
}


@pytest.mark.parametrize('family', list(POLICY))
@pytest.mark.parametrize('hw', [(61, 75), (97, 33)])
def test_odd_sizes_follow_the_documented_policy(family, hw):
    with torch.no_grad():
        outs = build(family).eval()(torch.randn(1, 3, *hw))
    assert [tuple(o.shape[2:]) for o in outs] == [
        (POLICY[family](hw[0], i), POLICY[family](hw[1], i)) for i in range(4)
    ]


@MODELS.register_module()
class _SelfInitAttention(nn.Module):
    """An op with its own init (like FLatten's or Shunted's), in the mmengine style."""

    def __init__(self, embed_dims, num_heads):
        super().__init__()
        self.proj = nn.Linear(embed_dims, embed_dims)
        nn.init.constant_(self.proj.weight, 0.5)

    def init_weights(self):
        nn.init.constant_(self.proj.weight, 0.25)

    def forward(self, x, hw_shape):
        return self.proj(x)


@pytest.mark.parametrize('family', ['AgentPVT', 'AgentSwin', 'BiFormer', 'ShuntedTransformer'])
def test_init_only_in_init_weights_and_the_op_init_wins(family):
    model = build(family, attn_cfgs=dict(type='_SelfInitAttention'))
    ops = [m for m in model.modules() if isinstance(m, _SelfInitAttention)]
    # construction initialises nothing skeleton-wide
    assert all(torch.all(o.proj.weight == 0.5) for o in ops)
    mlp = next(m for n, m in model.named_modules() if n.endswith('mlp.fc1'))
    before = mlp.weight.clone()
    model.init_weights()
    assert all(torch.all(o.proj.weight == 0.25) for o in ops)  # the op's own init
    assert not torch.equal(before, mlp.weight)  # the family default: trunc normal .02
    assert mlp.weight.std() < 0.03 and mlp.bias.abs().sum() == 0
