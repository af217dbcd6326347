"""BiFormer converter against the committed fixture of official key names and shapes."""

import importlib.util
import json
import os.path as osp

import pytest
import torch

from mmattn.converters.biformer import (
    ConversionError,
    convert_biformer,
    convert_file,
    expected_state_dict_shapes,
)
from mmattn.utils.checkpoint import safe_load, save_atomic

FIXTURE = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'biformer_official_keys.json')
CLI = osp.join(
    osp.dirname(osp.dirname(osp.dirname(__file__))),
    'tools',
    'model_converters',
    'biformer2mmattn.py',
)
VARIANTS = json.load(open(FIXTURE))['variants']


def fake_official(arch):
    """An official-layout checkpoint with the fixture's names and shapes (meta-free zeros)."""
    return {'model': {k: torch.zeros(s) for k, s in VARIANTS[arch].items()}, 'epoch': 299}


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_every_key_consumed_and_produced(arch):
    sd, report = convert_biformer(fake_official(arch))
    expected = expected_state_dict_shapes(arch)
    name = dict(t='tiny', s='small', b='base')[arch]
    assert report['arch'] == name
    # official keys: everything converted except the classifier head and the final norm
    assert sorted(report['dropped']) == sorted(
        k for k in VARIANTS[arch] if k.startswith(('head.', 'norm.'))
    )
    assert len(sd) + len(report['dropped']) == len(VARIANTS[arch])
    # mmattn keys: all produced except the fresh output norms
    assert report['missing'] == [k for k in expected if k.startswith('norm') and k[4].isdigit()]
    assert set(sd) | set(report['missing']) == set(expected)
    for k, v in sd.items():
        assert tuple(v.shape) == expected[k], k


def test_file_round_trip_and_refusals(tmp_path):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out.pth'
    save_atomic(fake_official('t'), str(src))
    report = convert_file(str(src), str(dst), arch='tiny')
    assert report['arch'] == 'tiny' and dst.exists()
    assert 'stem.conv1.weight' in safe_load(str(dst))['state_dict']

    # variant mismatch: refuses, writes nothing
    dst2 = tmp_path / 'out2.pth'
    with pytest.raises(ConversionError, match='BiFormer-tiny'):
        convert_file(str(src), str(dst2), arch='s')
    assert not dst2.exists()

    # foreign checkpoint
    save_atomic({'state_dict': {'backbone.conv1.weight': torch.zeros(3)}}, str(src))
    with pytest.raises(ConversionError, match='not an official BiFormer'):
        convert_file(str(src), str(dst2))
    assert not dst2.exists()


def test_refuses_unknown_missing_and_bad_shapes():
    ckpt = fake_official('t')
    ckpt['model']['stages.0.0.attn.extra.weight'] = torch.zeros(2)
    with pytest.raises(ConversionError, match='unused official keys'):
        convert_biformer(ckpt)
    ckpt = fake_official('t')
    del ckpt['model']['stages.1.0.attn.wo.weight']
    with pytest.raises(ConversionError, match='missing keys'):
        convert_biformer(ckpt)
    ckpt = fake_official('t')
    ckpt['model']['stages.2.3.mlp.0.weight'] = torch.zeros(5, 5)
    with pytest.raises(ConversionError, match='shape mismatches'):
        convert_biformer(ckpt)


def test_cli(tmp_path):
    spec = importlib.util.spec_from_file_location('biformer2mmattn', CLI)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    main = cli.main
    src = tmp_path / 'o.pth'
    save_atomic(fake_official('t'), str(src))
    assert main([str(src), str(tmp_path / 'c.pth'), '--arch', 't']) == 0
    assert main([str(src), str(tmp_path / 'd.pth'), '--arch', 'b']) == 2
    assert not (tmp_path / 'd.pth').exists()


def test_converted_checkpoint_loads_through_init_cfg(tmp_path):
    from mmattn.models.backbones.biformer import BiFormer

    torch.manual_seed(0)
    official = {'model': {k: torch.randn(s) for k, s in VARIANTS['t'].items()}}
    src, dst = tmp_path / 'o.pth', tmp_path / 'c.pth'
    save_atomic(official, str(src))
    convert_file(str(src), str(dst))
    model = BiFormer('t', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    sd = official['model']
    assert torch.equal(model.stages[1][0].attn.qkv.weight, sd['stages.1.0.attn.qkv.qkv.weight'])
    assert torch.equal(model.stages[1][0].attn.proj.bias, sd['stages.1.0.attn.wo.bias'])
    assert torch.equal(model.stages[3][1].attn.qkv.weight, sd['stages.3.1.attn.qkv.weight'])
    assert torch.equal(model.stem.bn2.running_var, sd['downsample_layers.0.4.running_var'])
    assert torch.equal(model.downsamples[2].conv.weight, sd['downsample_layers.3.0.weight'])
    assert torch.equal(model.stages[2][7].mlp.fc2.weight, sd['stages.2.7.mlp.3.weight'])
