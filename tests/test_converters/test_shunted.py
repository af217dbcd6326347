"""Shunted converter against the committed fixture of official key names and shapes."""

import argparse
import importlib.util
import json
import os.path as osp

import pytest
import torch

from mmattn.converters.shunted import ConversionError, convert_shunted, infer_arch
from mmattn.models.backbones.shunted import ShuntedTransformer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'shunted_official_keys.json')
_spec = importlib.util.spec_from_file_location(
    'shunted2mmattn', osp.join(REPO, 'tools', 'model_converters', 'shunted2mmattn.py')
)
_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cli)
cli_main = _cli.main
with open(FIXTURE) as f:
    OFFICIAL = json.load(f)  # {'shunted_t': {key: shape}, 'shunted_s': ..., 'shunted_b': ...}


def fake_official(name):
    """A state dict with the official names and shapes (random values)."""
    g = torch.Generator().manual_seed(0)
    return {
        k: (torch.tensor(3) if not shape else torch.randn(shape, generator=g))
        for k, shape in OFFICIAL[name].items()
    }


@pytest.mark.parametrize(
    'name,arch', [('shunted_t', 'tiny'), ('shunted_s', 'small'), ('shunted_b', 'base')]
)
def test_every_key_consumed_and_produced(name, arch):
    sd = fake_official(name)
    out, report = convert_shunted({'model': sd, 'epoch': 299}, arch=arch[0])
    assert report['arch'] == arch
    head = {k for k in sd if k.startswith('head.')}
    assert set(report['dropped']) == head == {'head.weight', 'head.bias'}
    expected = ShuntedTransformer(arch=arch).state_dict()
    assert set(out) == set(expected)  # every mmattn key produced, nothing extra
    assert len(out) + len(head) == len(sd)  # every official key consumed or dropped
    for k, v in expected.items():
        assert out[k].shape == v.shape, k
    # values are moved, not re-created: each official tensor appears exactly once
    ids = {id(v) for k, v in sd.items() if k not in head}
    assert {id(v) for v in out.values()} == ids
    # a few mappings spelled out
    assert out['patch_embeds.0.convs.0.conv.weight'] is sd['patch_embed1.conv.0.weight']
    assert out['stages.0.0.mlp.dwconv.weight'] is sd['block1.0.mlp.dwconv.dwconv.weight']
    assert out['stages.3.0.attn.local_conv.weight'] is sd['block4.0.attn.local_conv.weight']
    ShuntedTransformer(arch=arch).load_state_dict(out, strict=True)


def test_stem_mapping_with_extra_convs():
    sd = fake_official('shunted_b')  # two extra stem convs: conv.{0,3,6} / bn conv.{1,4,7}
    out, _ = convert_shunted(sd)
    assert out['patch_embeds.0.convs.2.conv.weight'] is sd['patch_embed1.conv.6.weight']
    assert out['patch_embeds.0.convs.2.bn.running_var'] is sd['patch_embed1.conv.7.running_var']
    assert out['patch_embeds.0.proj.weight'] is sd['patch_embed1.conv.9.weight']


def test_refuses_foreign_and_mismatched():
    with pytest.raises(ConversionError, match='not an official Shunted'):
        convert_shunted({'model': {'conv1.weight': torch.zeros(64, 3, 7, 7)}})
    with pytest.raises(ConversionError, match='Shunted-S'):
        convert_shunted({'model': fake_official('shunted_s')}, arch='t')
    sd = fake_official('shunted_t')
    del sd['block2.1.attn.kv1.weight']
    with pytest.raises(ConversionError, match='missing keys'):
        convert_shunted(sd)
    sd = fake_official('shunted_t')
    sd['block1.0.attn.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='unknown to ShuntedTransformer'):
        convert_shunted(sd)
    sd = fake_official('shunted_t')
    sd['pos_embed1'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='unused official keys'):
        convert_shunted(sd)
    sd = fake_official('shunted_t')
    sd['block3.0.attn.q.weight'] = torch.zeros(3, 3)
    with pytest.raises(ConversionError, match='shape mismatches'):
        convert_shunted(sd)
    sd = fake_official('shunted_t')
    sd['block2.2.norm1.weight'] = torch.zeros(128)  # a third block: no such variant
    with pytest.raises(ConversionError, match='match no Shunted variant'):
        infer_arch(sd)


def test_cli_writes_or_refuses(tmp_path, capsys):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out.pth'
    # The official trainer stores its argparse.Namespace next to the weights.
    torch.save({'model': fake_official('shunted_t'), 'args': argparse.Namespace(lr=5e-4)}, src)
    assert cli_main([str(src), str(dst), '--arch', 'b']) == 2
    assert not dst.exists() and 'Shunted-T' in capsys.readouterr().err
    assert cli_main([str(src), str(dst), '--arch', 't']) == 0
    ckpt = torch.load(dst, weights_only=True)
    ShuntedTransformer(arch='t').load_state_dict(ckpt['state_dict'], strict=True)
    assert ckpt['meta']['arch'] == 'tiny'
    bad, dst2 = tmp_path / 'resnet.pth', tmp_path / 'out2.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, bad)
    assert cli_main([str(bad), str(dst2)]) == 2 and not dst2.exists()
