"""AttentionPlugin: every registered op on NCHW maps, identity at insertion, learning after.

Every op found by registration alone (``attention_ops``), with only its type given, on an odd,
non-square ``(2, 64, 37, 53)`` map: the plug-in returns its input exactly at init, gradients
reach it, and one optimiser step makes it a different function. Also: the documented default
rules, overrides, a later-registered op, maps smaller than an op's reduction cell, mmcv's
``build_plugin_layer`` and MMDetection's ResNet-50 ``plugins``, and bf16 autocast.
"""

from typing import Optional, Sequence

import pytest
import torch
import torch.nn as nn

from mmattn.analysis.ops import attention_ops
from mmattn.models.plugins import AttentionPlugin, plugin_facts, plugin_heads
from mmattn.registry import MODELS

OPS = list(attention_ops())
SHAPE = (2, 64, 37, 53)


def _plugin(name, channels=64, **kwargs):
    torch.manual_seed(0)
    return AttentionPlugin(channels, dict(type=name), **kwargs)


def _step(module, x, lr=0.05):
    """One SGD step on a fixed random objective; returns the gradients it used."""
    target = torch.randn_like(module(x))
    opt = torch.optim.SGD(module.parameters(), lr=lr)
    loss = (module(x) * target).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    opt.step()
    opt.zero_grad()
    return grads, target


def test_every_registered_token_and_map_op_is_found():
    assert {
        'AgentAttention',
        'BiLevelRoutingAttention',
        'MultiHeadExternalAttention',
        'FocusedLinearAttention',
        'ShuntedSelfAttention',
        'ExternalAttention',
    } <= set(OPS)


@pytest.mark.parametrize('name', OPS)
def test_op_as_plugin_identity_then_learns(name):
    plugin = _plugin(name)
    plugin.init_weights()
    x = torch.randn(*SHAPE)
    out = plugin(x)
    assert out.shape == x.shape and torch.equal(out, x), 'not the identity at init'
    assert out.is_contiguous()  # NCHW memory, as RoIAlign expects
    grads, target = _step(plugin, x)
    assert grads['gamma'].abs().sum() > 0  # the scale learns from the first step
    after = plugin(x)
    assert torch.isfinite(after).all()
    delta = (after - x).abs().max().item()
    assert delta > 1e-4, f'{name}: still the identity after a step ({delta:.2e})'
    # from the second step on, the op itself receives gradients: every parameter gets one
    (after * target).sum().backward()
    missing = [
        n
        for n, p in plugin.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not missing, f'{name}: no or non-finite gradient for {missing}'
    zero = [n for n, p in plugin.attn.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f'{name}: zero gradient for {zero}'


@pytest.mark.parametrize('name', OPS)
def test_maps_smaller_than_the_ops_cells(name):
    """A 3 x 5 map: below Swin's window (7), BiFormer's regions (7 x 7), Agent's 7 x 7 agents
    and the reduction rate 4 of SRA / Shunted at the default 32 x 32 nominal map."""
    plugin = _plugin(name, layer_scale_init=1.0)
    x = torch.randn(2, 64, 3, 5)
    out = plugin(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.equal(out, x)


def test_small_map_padding_equals_the_op_on_the_padded_map():
    """Below its reduction rate the op sees the normalised map zero-padded to the rate."""
    plugin = _plugin('SpatialReductionAttention', layer_scale_init=1.0).eval()
    assert plugin.attn.sr_ratio == 4 and plugin.min_side == 4
    x = torch.randn(1, 64, 3, 5)
    with torch.no_grad():
        tokens = plugin.norm(x.permute(0, 2, 3, 1))  # (1, 3, 5, C)
        padded = torch.zeros(1, 4, 5, 64)
        padded[:, :3] = tokens
        ref = plugin.attn(padded.reshape(1, 20, 64), (4, 5)).reshape(1, 4, 5, 64)
        ref = x + ref[:, :3].permute(0, 3, 1, 2)
        torch.testing.assert_close(plugin(x), ref)
    with pytest.raises(ValueError, match='smaller than the reduction rate'):
        plugin.attn(torch.randn(1, 15, 64), (3, 5))  # the op alone refuses


def test_default_rules():
    assert [plugin_heads(c) for c in (16, 64, 96, 256, 100)] == [1, 2, 3, 8, 2]
    assert [plugin_heads(c, even=True) for c in (32, 96, 256)] == [2, 2, 8]
    facts = plugin_facts('SpatialReductionAttention', 96, 32)
    assert facts['num_heads'] == 3 and facts['sr_ratio'] == 4
    assert facts['pretrain_hw'] == (32, 32) and facts['window_size'] == 7
    assert facts['n_win'] == 7 and facts['agent_num'] == 49
    small = plugin_facts('AgentAttention', 64, (5, 12))
    assert small['agent_num'] == 25 and small['window_size'] == 5 and small['n_win'] == 1
    assert small['sr_ratio'] == 1 and small['pretrain_hw'] == (5, 12)
    assert [
        plugin_facts('SpatialReductionAttention', 64, s)['sr_ratio'] for s in (8, 16, 20, 40, 80)
    ] == [1, 2, 2, 4, 8]
    assert plugin_facts('ShuntedSelfAttention', 96, 80)['num_heads'] == 2
    assert plugin_facts('FocusedLinearAttention', 96, 80)['sr_ratio'] == 1

    # the ops receive exactly what their signature declares
    agent = AttentionPlugin(96, dict(type='AgentAttention'), map_size=(20, 30)).attn
    assert agent.num_heads == 3 and agent.agent_num == 49 and agent.pretrain_hw == (20, 30)
    bra = AttentionPlugin(64, dict(type='BiLevelRoutingAttention'), map_size=16).attn
    assert bra.n_win == 4 and bra.num_heads == 2
    swin = AttentionPlugin(64, dict(type='ShiftWindowMSA'), map_size=4).attn
    assert swin.window_size == (4, 4)
    shunted = AttentionPlugin(96, dict(type='ShuntedSelfAttention'), map_size=80).attn
    assert shunted.num_heads == 2 and shunted.sr_ratio == 8
    flatten = AttentionPlugin(64, dict(type='FocusedLinearAttention'), map_size=24).attn
    assert flatten.sr_ratio == 1 and flatten.pos_hw == (24, 24)
    ea = AttentionPlugin(64, dict(type='ExternalAttention')).attn
    assert isinstance(ea.act, nn.Identity)  # the plug-in owns the residual


def test_attn_cfg_keys_override_the_defaults():
    op = AttentionPlugin(
        64, dict(type='mmattn.SpatialReductionAttention', sr_ratio=2, num_heads=4)
    ).attn
    assert op.sr_ratio == 2 and op.num_heads == 4


@MODELS.register_module(name='_PluginToyOp')
class _PluginToyOp(nn.Module):
    """An op registered after the plug-in was written (as a user's custom_imports file does):
    softmax attention inside windows of ``window_size``, heads from the plug-in's rule."""

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 1,
        window_size: int = 3,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.num_heads, self.window_size = num_heads, window_size
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def test_an_op_registered_later_is_a_plugin_for_free():
    plugin = AttentionPlugin(128, dict(type='_PluginToyOp'), map_size=5)
    assert plugin.attn.num_heads == 4 and plugin.attn.window_size == 5  # the generic rules
    x = torch.randn(1, 128, 6, 7)
    assert torch.equal(plugin(x), x)
    _step(plugin, x)
    assert not torch.equal(plugin(x), x)


def test_bad_configs_and_inputs_are_named():
    with pytest.raises(TypeError, match='attn_cfg must be a dict with "type"'):
        AttentionPlugin(64, dict(num_heads=2))
    with pytest.raises(KeyError, match='registered types are'):
        AttentionPlugin(64, dict(type='NoSuchAttention'))
    with pytest.raises(TypeError, match='is not an attention op'):
        AttentionPlugin(64, dict(type='AttentionNeck'))
    with pytest.raises(ValueError, match='map_size'):
        AttentionPlugin(64, dict(type='AgentAttention'), map_size=(3, 4, 5))
    plugin = _plugin('AgentAttention')
    with pytest.raises(ValueError, match=r'expected a \(B, 64, H, W\) map'):
        plugin(torch.randn(1, 32, 8, 8))


def test_mmcv_build_plugin_layer_under_mmdet_scope():
    import mmdet.models  # noqa: F401
    from mmcv.cnn import build_plugin_layer
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmdet'):
        name, layer = build_plugin_layer(
            dict(type='mmattn.AttentionPlugin', attn_cfg=dict(type='AgentAttention')),
            in_channels=64,
            postfix='_2',
        )
    assert name == 'attn_plugin_2' and isinstance(layer, AttentionPlugin)
    assert layer.in_channels == 64


def _resnet(op=None):
    from mmdet.models.backbones import ResNet

    plugins = (
        None
        if op is None
        else [
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=dict(type=op), map_size=8),
                stages=(False, False, True, True),
                position='after_conv2',
            )
        ]
    )
    # zero_init_residual=False: as in a pretrained ResNet, norm3 is not zero, so gradients
    # reach what comes before it in a bottleneck
    return ResNet(
        depth=50,
        base_channels=8,
        out_indices=(0, 1, 2, 3),
        norm_eval=False,
        zero_init_residual=False,
        plugins=plugins,
    )


@pytest.mark.parametrize('name', OPS)
def test_inside_mmdet_resnet50_plugins(name):
    """ResNet-50 (8 base channels) with the plug-in after conv2 of every stage-3/4 bottleneck
    (32 / 64 channels; after conv3 the plug-in would see ``norm3``'s output, zero at init in a
    ResNet trained from scratch: ``zero_init_residual``): after init_weights it equals the
    plain ResNet-50 with the same weights; one step later it differs, and the plug-ins got
    gradients."""
    from mmengine.registry import DefaultScope

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = _resnet(name)
        plain = _resnet()
    model.init_weights()
    names = [n for n, _ in model.named_modules() if n.endswith('attn_plugin')]
    assert len(names) == 6 + 3
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all('attn_plugin' in k for k in unexpected)
    model.eval(), plain.eval()
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        for a, b in zip(model(x), plain(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sum(o.square().mean() for o in model(x)).backward()
    gammas = [p.grad for n, p in model.named_parameters() if n.endswith('attn_plugin.gamma')]
    assert len(gammas) == 9 and all(g is not None and g.abs().sum() > 0 for g in gammas)
    opt.step()
    model.eval()
    with torch.no_grad():
        diff = max((a - b).abs().max().item() for a, b in zip(model(x)[2:], plain(x)[2:]))
    assert diff > 1e-4, f'{name}: ResNet-50 unchanged after a step'


@pytest.mark.parametrize('name', ['FocusedLinearAttention', 'MultiHeadExternalAttention'])
def test_linear_attention_fp32_islands_under_bf16(name):
    """Without the pre-norm, on activations x200: bf16 autocast stays finite and within 4
    half-ulps of bf16 (relative, whole output) of the fp32 result, because the ops compute their
    normalisers in fp32 (tests/test_reliability/test_amp_families.py measures the op alone)."""
    torch.manual_seed(0)
    plugin = AttentionPlugin(64, dict(type=name), norm_cfg=None, layer_scale_init=1.0).eval()
    x = torch.randn(2, 64, 37, 53) * 200
    with torch.no_grad():
        ref = plugin.branch(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = plugin.branch(x)
    assert torch.isfinite(out).all()
    err = ((out.float() - ref).norm() / ref.norm()).item()
    assert err < 4 * 2.0**-8, f'{name}: relative error {err:.3g} under bf16'


@pytest.mark.parametrize('name', OPS)
def test_bf16_autocast_no_nan(name):
    plugin = _plugin(name, layer_scale_init=1.0)
    x = torch.randn(*SHAPE) * 30
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = plugin(x)
        loss = out.float().square().mean()
    loss.backward()
    assert torch.isfinite(out).all() and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in plugin.parameters() if p.grad is not None)
