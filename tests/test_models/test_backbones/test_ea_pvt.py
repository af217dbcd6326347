"""EA-PVT (PVT skeleton + multi-head external attention) and ResNet + EA plugin backbones."""

import pytest
import torch

from mmattn.models.attentions.external_attention import (
    ExternalAttentionBlock,
    MultiHeadExternalAttention,
)
from mmattn.models.backbones.ea_pvt import EAPVT

TINY = dict(
    embed_dims=[16, 32, 48, 64],
    num_heads=[1, 2, 3, 4],
    mlp_ratios=[2, 2, 2, 2],
    depths=[1, 1, 1, 1],
    sr_ratios=[8, 4, 2, 1],
)


@pytest.mark.parametrize('hw', [(64, 64), (61, 75)])
def test_shapes_and_strides(hw):
    torch.manual_seed(0)
    m = EAPVT(arch=TINY, attn_cfgs=dict(type='MultiHeadExternalAttention', num_slots=8)).eval()
    outs = m(torch.randn(1, 3, *hw))
    assert len(outs) == 4
    for i, (o, c) in enumerate(zip(outs, TINY['embed_dims'])):
        s = 4 * 2**i
        assert o.shape[:2] == (1, c)
        assert o.shape[2] in (hw[0] // s, -(-hw[0] // s))
        assert o.shape[3] in (hw[1] // s, -(-hw[1] // s))


def test_every_block_uses_external_attention():
    m = EAPVT(arch='tiny')
    ops = [b.attn for layer in m.layers for b in layer.blocks]
    assert len(ops) == 8 and all(isinstance(op, MultiHeadExternalAttention) for op in ops)
    assert [layer.blocks[0].attn.num_heads for layer in m.layers] == [4, 8, 20, 32]
    m = EAPVT(arch=TINY, attn_cfgs=dict(type='SpatialReductionAttention'))  # any op plugs in
    assert [layer.blocks[0].attn.sr_ratio for layer in m.layers] == [8, 4, 2, 1]
    with pytest.raises(ValueError, match='unknown arch'):
        EAPVT(arch='huge')


def test_frozen_norm_eval_and_with_cp():
    torch.manual_seed(0)
    m = EAPVT(
        arch=TINY,
        attn_cfgs=dict(type='MultiHeadExternalAttention', num_slots=8),
        frozen_stages=1,
        norm_eval=True,
        drop_path_rate=0.0,
    )
    m.train()
    assert all(not p.requires_grad for p in m.layers[0].parameters())
    assert all(p.requires_grad for p in m.layers[1].parameters())
    assert m.layers[1].blocks[0].norm1.training  # norm_eval: BatchNorm only, none here
    x = torch.randn(2, 3, 48, 40)
    ref = m(x)
    m.with_cp = True
    x.requires_grad_(True)
    out = m(x)
    for a, b in zip(ref, out):
        assert torch.allclose(a, b, atol=1e-6)
    sum(o.sum() for o in out).backward()
    assert m.layers[3].blocks[0].attn.mem_k.weight.grad is not None


def test_resnet_with_ea_plugin_equals_plain_resnet_at_init():
    """ImageNet ResNet weights load, and the plugged network computes the plain ResNet."""
    from mmdet.models.backbones import ResNet

    import mmattn.models  # noqa: F401

    torch.manual_seed(0)
    plugins = [
        dict(
            cfg=dict(type='mmattn.ExternalAttentionBlock', num_slots=8),
            stages=(False, True, True, True),
            position='after_conv3',
        )
    ]
    plain = ResNet(depth=50, base_channels=8, out_indices=(0, 1, 2, 3))
    plugged = ResNet(depth=50, base_channels=8, out_indices=(0, 1, 2, 3), plugins=plugins)
    plugged.init_weights()  # ResNet's Kaiming/Constant init first, then ours (zero norm)
    plain.eval()
    missing = plugged.load_state_dict(plain.state_dict(), strict=False)
    assert not missing.unexpected_keys
    assert missing.missing_keys and all('ea_block' in k for k in missing.missing_keys)
    blocks = [m for m in plugged.modules() if isinstance(m, ExternalAttentionBlock)]
    assert len(blocks) == 4 + 6 + 3
    x = torch.randn(1, 3, 64, 72)
    for mode in ('eval', 'train'):  # batch statistics too: the zero norm weight rules
        getattr(plugged, mode)()
        getattr(plain, mode)()
        with torch.no_grad():
            for a, b in zip(plain(x), plugged(x)):
                assert torch.equal(a, b)
