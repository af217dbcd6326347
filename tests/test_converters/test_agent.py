"""Agent-PVT / Agent-Swin converter against the committed fixture of official key names and
shapes (read off LeapLabTHU/Agent-Attention's ImageNet models)."""

import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmattn.converters.agent import ConversionError, convert_agent, convert_file
from mmattn.models.backbones.pvt import AgentPVT
from mmattn.models.backbones.swin import AgentSwin
from mmattn.utils.checkpoint import safe_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
with open(osp.join(REPO, 'tests', 'data', 'agent_official_keys.json')) as f:
    FIXTURE = json.load(f)


def fake_official(name, seed=0):
    """An official-layout state dict with random values of the fixture's shapes."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(shape, generator=g) if shape else torch.randn((), generator=g)
        for k, shape in FIXTURE[name].items()
    }


@pytest.mark.parametrize(
    'name,cls,arch',
    [
        ('agent_pvt_tiny', AgentPVT, 'tiny'),
        ('agent_swin_tiny', AgentSwin, 'tiny'),
        ('agent_swin_base', AgentSwin, 'base'),
    ],
)
def test_every_key_consumed_and_produced(name, cls, arch):
    sd = fake_official(name)
    out, report = convert_agent({'model': sd, 'epoch': 300})
    assert report['arch'] == arch
    model = cls(arch=arch)
    expected = model.state_dict()
    # every mmattn key is produced (except Swin's dense output norms) with the right shape
    assert set(expected) - set(out) == set(report['new'])
    assert all(out[k].shape == v.shape for k, v in out.items() for v in [expected[k]])
    # every official key is consumed or knowingly dropped
    dropped = set(report['dropped'])
    for k in sd:
        if k in dropped:
            assert (
                k.startswith('head.')
                or k.startswith('norm.')
                or k.endswith('attn_mask')
                or k.endswith('relative_position_index')
            ), k
    consumed = set(sd) - dropped
    if name.startswith('agent_pvt'):
        # q and kv become one qkv; the rest maps one to one
        qkv = [k for k in consumed if '.attn.q.' in k or '.attn.kv.' in k]
        assert len(out) == len(consumed) - len(qkv) // 2
        k = 'layers.1.blocks.0.attn.qkv.weight'
        torch.testing.assert_close(
            out[k], torch.cat([sd['block2.0.attn.q.weight'], sd['block2.0.attn.kv.weight']])
        )
        torch.testing.assert_close(out['layers.3.pos_embed'], sd['pos_embed4'])
    else:
        assert len(out) == len(consumed)
        assert [c['type'] for c in report['attn_cfgs'][2][:2]] == ['AgentAttention'] * 2
    model.load_state_dict(out, strict=False)


def test_pvt_report_facts():
    _, report = convert_agent(fake_official('agent_pvt_tiny'))
    assert report['family'] == 'pvt'
    assert report['attn_cfgs'] == [dict(type='AgentAttention')] * 4
    assert report['layout'] == '; '.join(f'stage {i}: AgentAttention' for i in range(1, 5))
    assert report['agent_nums'] == [9, 16, 49, 49] and report['pretrain_img_size'] == 224


def test_refuses_foreign_and_mismatched(tmp_path):
    with pytest.raises(ConversionError, match='not an official Agent'):
        convert_agent({'model': {'conv1.weight': torch.zeros(3)}})
    with pytest.raises(ConversionError, match='requested'):
        convert_agent(fake_official('agent_pvt_tiny'), arch='s')
    with pytest.raises(ConversionError, match='requested'):
        convert_agent(fake_official('agent_swin_tiny'), family='pvt')
    sd = fake_official('agent_pvt_tiny')
    sd.pop('block3.1.attn.na_bias')
    with pytest.raises(ConversionError, match='missing'):
        convert_agent(sd)
    sd = fake_official('agent_swin_tiny')
    sd['layers.0.blocks.0.attn.extra'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='unused|unknown'):
        convert_agent(sd)
    sd = fake_official('agent_pvt_tiny')
    sd['pos_embed2'] = torch.zeros(1, 10, 128)
    with pytest.raises(ConversionError, match='shape'):
        convert_agent(sd)
    # nothing is written on refusal
    src, dst = str(tmp_path / 'bad.pth'), str(tmp_path / 'out.pth')
    torch.save({'model': sd}, src)
    with pytest.raises(ConversionError):
        convert_file(src, dst)
    assert not osp.exists(dst)


def test_cli_round_trip(tmp_path):
    src, dst = str(tmp_path / 'agent_swin_t.pth'), str(tmp_path / 'out.pth')
    torch.save({'model': fake_official('agent_swin_tiny')}, src)
    cli = osp.join(REPO, 'tools', 'model_converters', 'agent2mmattn.py')
    proc = subprocess.run(
        [sys.executable, cli, src, dst, '--family', 'swin', '--arch', 't'],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "type='mmattn.AgentSwin'" in proc.stdout
    ckpt = safe_load(dst)
    assert ckpt['meta']['arch'] == 'tiny' and 'state_dict' in ckpt
    model = AgentSwin(arch='t', init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    torch.testing.assert_close(
        model.layers[0].blocks[0].attn.an_bias, ckpt['state_dict']['layers.0.blocks.0.attn.an_bias']
    )
    bad = subprocess.run(
        [sys.executable, cli, src, str(tmp_path / 'x.pth'), '--arch', 'b'],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and 'error' in bad.stderr
    assert not osp.exists(tmp_path / 'x.pth')
