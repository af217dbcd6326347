"""FLatten converter against the committed fixture of official key names and shapes."""

import functools
import importlib.util
import json
import os.path as osp
import re

import pytest
import torch

from mmattn.converters.flatten import ConversionError, build_target, convert_flatten

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')
_spec = importlib.util.spec_from_file_location(
    'flatten2mmattn', osp.join(REPO, 'tools', 'model_converters', 'flatten2mmattn.py')
)
_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cli)
with open(osp.join(DATA, 'flatten_official_keys.json')) as f:
    OFFICIAL = {k: v for k, v in json.load(f).items() if not k.startswith('_')}

DROPPABLE = re.compile(r'^(head\.|norm\.)|\.attn_mask$|\.relative_position_index$')


@functools.lru_cache(maxsize=None)
def expected_shapes(name):
    """Key -> shape of the mmattn backbone for fixture variant ``name`` (built once)."""
    from mmattn.models.backbones.flatten import FLattenPVT, FLattenPVTv2, FLattenSwin

    family, arch = name.split('-')
    cls = dict(pvt=FLattenPVT, pvtv2=FLattenPVTv2, swin=FLattenSwin)[family]
    return {k: v.shape for k, v in cls(arch, drop_path_rate=0.0).state_dict().items()}


def fake_official(name, device='cpu'):
    """A state dict with the official names and shapes (random values on cpu)."""
    g = torch.Generator().manual_seed(0)
    if device == 'meta':
        return {k: torch.empty(s, device='meta') for k, s in OFFICIAL[name].items()}
    return {k: torch.randn(s, generator=g) for k, s in OFFICIAL[name].items()}


@pytest.mark.parametrize('name', sorted(OFFICIAL))
def test_every_key_consumed_and_produced(name):
    family, arch = name.split('-')
    sd = fake_official(name, device='meta')  # shapes only: no memory for the large variants
    expected = expected_shapes(name)
    out, report = convert_flatten(
        {'model': sd, 'epoch': 299}, arch=arch, family=family, expected=expected
    )
    assert report['arch'].startswith(arch)
    assert all(DROPPABLE.search(k) for k in report['dropped'])
    assert {k for k in sd if DROPPABLE.search(k)} == set(report['dropped'])
    assert set(out) | set(report['new']) == set(expected)
    assert set(report['new']) == (
        {f'norm{i}.{w}' for i in range(4) for w in ('weight', 'bias')}
        if family == 'swin'
        else set()
    )
    for k, v in out.items():
        assert tuple(v.shape) == tuple(expected[k]), k
    split = sum(k.endswith('attn.qkv.weight') and f'{k[:-10]}dwc.weight' in sd for k in sd)
    # every official key consumed (Swin linear-block qkv -> q + kv) or dropped
    assert len(out) == len(sd) - len(report['dropped']) + 2 * split
    if family in ('pvt', 'pvtv2'):
        assert report['attn_cfgs'] == [dict(type='FocusedLinearAttention', sr_ratio=1)] * 4
        assert report['pretrain_img_size'] == 224
        if family == 'pvtv2':  # classifier only; the after-stage norms are the backbone's
            assert sorted(report['dropped']) == ['head.bias', 'head.weight']
            assert all(f'layers.{i}.norm.weight' in out for i in range(4))
    else:
        assert [s[0]['type'] for s in report['attn_cfgs']] == ['FocusedLinearAttention'] * 2 + [
            'ShiftWindowMSA'
        ] * 2
        assert report['window_size'] == 7 and report['pretrain_img_size'] == 224


def test_swin_qkv_split_and_values_moved():
    sd = fake_official('swin-t')
    out, _ = convert_flatten(sd, expected=expected_shapes('swin-t'))
    qkv = sd['layers.0.blocks.1.attn.qkv.weight']
    assert torch.equal(out['layers.0.blocks.1.attn.q.weight'], qkv[:96])
    assert torch.equal(out['layers.0.blocks.1.attn.kv.weight'], qkv[96:])
    assert torch.equal(
        out['layers.0.blocks.1.attn.kv.bias'], sd['layers.0.blocks.1.attn.qkv.bias'][96:]
    )
    # softmax (S) blocks keep their fused qkv and bias table
    assert out['layers.2.blocks.0.attn.qkv.weight'] is sd['layers.2.blocks.0.attn.qkv.weight']
    assert 'layers.2.blocks.1.attn.relative_position_index' not in out
    assert out['layers.1.blocks.0.attn.positional_encoding'].shape == (1, 28 * 28, 192)


def test_pvt_mapping_and_load():
    sd = fake_official('pvt-t')
    out, report = convert_flatten({'model': sd})
    assert out['layers.0.pos_embed'] is sd['pos_embed1']
    assert out['layers.3.patch_embed.proj.weight'] is sd['patch_embed4.proj.weight']
    assert out['layers.1.blocks.1.attn.dwc.weight'] is sd['block2.1.attn.dwc.weight']
    model = build_target(report)
    model.load_state_dict(out, strict=True)


def test_pvtv2_mapping_values_and_load():
    sd = fake_official('pvtv2-b0')
    out, report = convert_flatten({'model': sd, 'epoch': 299})
    assert report['family'] == 'pvtv2' and report['arch'] == 'b0'
    assert report['name'] == 'FLatten-PVTv2-b0'
    assert out['layers.0.patch_embed.proj.weight'] is sd['patch_embed1.proj.weight']
    assert out['layers.0.patch_embed.proj.weight'].shape == (32, 3, 7, 7)  # overlapping 7x7
    assert out['layers.3.norm.bias'] is sd['norm4.bias']
    assert out['layers.1.blocks.1.mlp.dwconv.weight'] is sd['block2.1.mlp.dwconv.dwconv.weight']
    assert (
        out['layers.2.blocks.0.attn.positional_encoding'] is sd['block3.0.attn.positional_encoding']
    )
    model = build_target(report)
    model.load_state_dict(out, strict=True)
    # b1 has b0's depths but twice the width: told apart by the shapes
    assert (
        convert_flatten(fake_official('pvtv2-b1', 'meta'), expected=expected_shapes('pvtv2-b1'))[1][
            'arch'
        ]
        == 'b1'
    )


def test_pvtv2_refuses_mismatches():
    with pytest.raises(ConversionError, match='FLatten-PVTv2-b0'):
        convert_flatten(
            fake_official('pvtv2-b0', 'meta'), arch='b1', expected=expected_shapes('pvtv2-b0')
        )
    with pytest.raises(
        ConversionError, match="'pvt' requested but the checkpoint is FLatten-PVTv2"
    ):
        convert_flatten(
            fake_official('pvtv2-b2', 'meta'), family='pvt', expected=expected_shapes('pvtv2-b2')
        )
    with pytest.raises(ConversionError, match="unknown arch 'b5'"):
        convert_flatten(
            fake_official('pvtv2-b0', 'meta'), arch='b5', expected=expected_shapes('pvtv2-b0')
        )
    sd = {
        k: v for k, v in fake_official('pvtv2-b2', 'meta').items() if not k.startswith('block3.5.')
    }  # depths 3-4-5-3: no variant
    with pytest.raises(ConversionError, match=r'depths \[3, 4, 5, 3\] matches no variant'):
        convert_flatten(sd)
    sd = fake_official('pvtv2-b0', 'meta')
    del sd['norm3.weight']
    with pytest.raises(ConversionError, match='missing keys.*layers.2.norm.weight'):
        convert_flatten(sd, expected=expected_shapes('pvtv2-b0'))
    sd = fake_official('pvtv2-b0', 'meta')
    sd['pos_embed1'] = torch.empty(1, 3136, 32, device='meta')  # v1 and v2 keys mixed
    with pytest.raises(ConversionError):
        convert_flatten(sd, expected=expected_shapes('pvtv2-b0'))
    sd = fake_official('pvtv2-b0', 'meta')
    sd['block1.0.mlp.dwconv.dwconv.weight'] = torch.empty(256, 1, 5, 5, device='meta')
    with pytest.raises(ConversionError, match='shape mismatches.*mlp.dwconv.weight'):
        convert_flatten(sd, expected=expected_shapes('pvtv2-b0'))
    # the plain PVT v2 (softmax attention everywhere, no focused linear keys) is not FLatten
    plain = {
        k: v
        for k, v in fake_official('pvtv2-b0', 'meta').items()
        if not re.search(r'attn\.(dwc\.|scale|positional_encoding)', k)
    }
    with pytest.raises(ConversionError, match='not an official FLatten'):
        convert_flatten(plain)


def test_refuses_foreign_and_mismatched():
    with pytest.raises(ConversionError, match='not an official FLatten'):
        convert_flatten({'model': {'conv1.weight': torch.zeros(64, 3, 7, 7)}})
    with pytest.raises(ConversionError, match='expected a dict'):
        convert_flatten([1, 2])
    agent = json.load(open(osp.join(DATA, 'agent_official_keys.json')))
    for name, keys in agent.items():
        if isinstance(keys, dict) and keys:
            sd = {k: torch.empty(s, device='meta') for k, s in keys.items()}
            with pytest.raises(ConversionError):
                convert_flatten(sd)
    with pytest.raises(ConversionError, match='FLatten-PVT-tiny'):
        convert_flatten(fake_official('pvt-t', 'meta'), arch='s', expected=expected_shapes('pvt-t'))
    with pytest.raises(ConversionError, match="'swin' requested"):
        convert_flatten(
            fake_official('pvt-t', 'meta'), family='swin', expected=expected_shapes('pvt-t')
        )
    sd = fake_official('pvt-t', 'meta')
    del sd['block2.1.attn.kv.weight']
    with pytest.raises(ConversionError, match='missing keys'):
        convert_flatten(sd, expected=expected_shapes('pvt-t'))
    sd = fake_official('pvt-t', 'meta')
    sd['block1.0.attn.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='unknown to the mmattn backbone'):
        convert_flatten(sd, expected=expected_shapes('pvt-t'))
    sd = fake_official('swin-t', 'meta')
    sd['cls_token'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='unused official keys'):
        convert_flatten(sd, expected=expected_shapes('swin-t'))
    sd = fake_official('pvt-t', 'meta')
    sd['block3.0.attn.q.weight'] = torch.empty(3, 3, device='meta')
    with pytest.raises(ConversionError, match='shape mismatches'):
        convert_flatten(sd, expected=expected_shapes('pvt-t'))


def test_cli_writes_loadable_file_or_nothing(tmp_path):
    src, dst = tmp_path / 'official.pth', tmp_path / 'flatten_pvt_t.pth'
    sd = fake_official('pvt-t')
    torch.save({'model': sd, 'epoch': 299, 'max_accuracy': 77.8}, src)
    # wrong variant: refused, nothing written
    assert _cli.main([str(src), str(dst), '--arch', 'm']) == 2
    assert not dst.exists()
    assert _cli.main([str(src), str(dst), '--family', 'pvt', '--arch', 't']) == 0
    from mmattn.models.backbones.flatten import FLattenPVT

    model = FLattenPVT('t', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    assert torch.equal(
        model.layers[0].blocks[0].attn.positional_encoding, sd['block1.0.attn.positional_encoding']
    )
    assert torch.equal(model.layers[2].blocks[1].mlp.fc1.weight, sd['block3.1.mlp.fc1.weight'])
    src2, dst2 = tmp_path / 'official_b0.pth', tmp_path / 'flatten_pvtv2_b0.pth'
    sd2 = fake_official('pvtv2-b0')
    torch.save({'model': sd2, 'epoch': 299, 'max_accuracy': 71.1}, src2)
    assert _cli.main([str(src2), str(dst2), '--family', 'pvtv2', '--arch', 'b2']) == 2
    assert not dst2.exists()
    assert _cli.main([str(src2), str(dst2), '--family', 'pvtv2', '--arch', 'b0']) == 0
    from mmattn.models.backbones.flatten import FLattenPVTv2

    model = FLattenPVTv2('b0', init_cfg=dict(type='Pretrained', checkpoint=str(dst2)))
    model.init_weights()
    assert torch.equal(model.layers[3].norm.weight, sd2['norm4.weight'])
    assert torch.equal(
        model.layers[0].blocks[1].mlp.dwconv.weight, sd2['block1.1.mlp.dwconv.dwconv.weight']
    )
    bad = tmp_path / 'bad.pth'
    torch.save({'model': {'x': torch.zeros(1)}}, bad)
    assert _cli.main([str(bad), str(tmp_path / 'out.pth')]) == 2
    assert not (tmp_path / 'out.pth').exists()
