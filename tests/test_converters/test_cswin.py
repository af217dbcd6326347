"""CSWin-family converter against the committed fixture of official key names and shapes
(``tests/data/cswin_official_keys.json``, read off the official model definitions)."""

import functools
import importlib.util
import json
import os.path as osp
import re

import pytest
import torch

from mmattn.converters.cswin import ConversionError, build_target, convert_cswin, read_facts

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')
_spec = importlib.util.spec_from_file_location(
    'cswin2mmattn', osp.join(REPO, 'tools', 'model_converters', 'cswin2mmattn.py')
)
_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cli)
with open(osp.join(DATA, 'cswin_official_keys.json')) as f:
    OFFICIAL = {k: v for k, v in json.load(f).items() if not k.startswith('_')}

DROPPABLE = re.compile(r'^(head|norm)\.(weight|bias)$')


def fake_official(name, device='cpu'):
    """A state dict with the official names and shapes (random values on cpu)."""
    if device == 'meta':
        return {k: torch.empty(s, device='meta') for k, s in OFFICIAL[name].items()}
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=g) for k, s in OFFICIAL[name].items()}


@functools.lru_cache(maxsize=None)
def expected_shapes(name):
    facts = read_facts(fake_official(name, 'meta'))
    with torch.device('meta'):  # shapes only: no memory or init time for the B variants
        return {k: v.shape for k, v in build_target(facts).state_dict().items()}


@pytest.mark.parametrize('name', sorted(OFFICIAL))
def test_every_key_consumed_and_produced(name):
    family, arch = name.split('-')
    sd = fake_official(name, device='meta')
    expected = expected_shapes(name)
    out, report = convert_cswin(
        {'model': sd, 'epoch': 299}, arch=arch, family=family, expected=expected
    )
    assert report['arch'].startswith(arch) and report['family'] == family
    assert sorted(report['dropped']) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    assert set(out) | set(report['new']) == set(expected)
    assert set(report['new']) == {f'norm{i}.{w}' for i in range(4) for w in ('weight', 'bias')}
    for k, v in out.items():
        assert tuple(v.shape) == tuple(expected[k]), k
    first = 'AgentAttention' if family == 'agent' else 'FocusedLinearAttention'
    assert [c['type'] for c in report['attn_cfgs']] == [first] * 2 + ['CSWinAttention'] * 2
    assert report['pretrain_img_size'] == 224
    if family == 'agent':
        assert report['agent_nums'] == [9, 16, 49, 49]
    else:
        assert report['attn_cfgs'][0] == dict(
            type='FocusedLinearAttention', lepe_kernel_size=3, kernel_size=5
        )
    # every official key consumed or dropped: linear qkv -> q + kv, two CSWin get_v -> lepe
    split = (
        sum(
            k.endswith('qkv.weight') or k.endswith('qkv.bias')
            for k in sd
            if re.match(r'stage[12]\.', k)
        )
        if family == 'flatten'
        else 0
    )
    merged = sum(k.endswith('attns.1.get_v.weight') or k.endswith('attns.1.get_v.bias') for k in sd)
    assert len(out) == len(sd) - len(report['dropped']) + split - merged


def test_values_moved():
    sd = fake_official('flatten-t')
    out, _ = convert_cswin(sd, expected=expected_shapes('flatten-t'))
    qkv = sd['stage1.1.qkv.weight']
    assert torch.equal(out['stages.0.blocks.1.attn.q.weight'], qkv[:64])
    assert torch.equal(out['stages.0.blocks.1.attn.kv.weight'], qkv[64:])
    assert torch.equal(
        out['stages.0.blocks.1.attn.lepe.weight'], sd['stage1.1.attns.0.get_v.weight']
    )
    assert torch.equal(
        out['stages.0.blocks.1.attn.positional_encoding'],
        sd['stage1.1.attns.0.positional_encoding'],
    )
    lepe = out['stages.2.blocks.3.attn.lepe.bias']
    assert torch.equal(lepe[:128], sd['stage3.3.attns.0.get_v.bias'])
    assert torch.equal(lepe[128:], sd['stage3.3.attns.1.get_v.bias'])
    assert torch.equal(
        out['stages.3.blocks.0.attn.lepe.weight'], sd['stage4.0.attns.0.get_v.weight']
    )  # global: one branch
    assert torch.equal(out['stages.2.merge.proj.weight'], sd['merge2.conv.weight'])
    assert torch.equal(out['patch_embed.norm.bias'], sd['stage1_conv_embed.2.bias'])
    sd = fake_official('agent-t')
    out, _ = convert_cswin(sd, expected=expected_shapes('agent-t'))
    assert torch.equal(
        out['stages.1.blocks.3.attn.dwc.weight'], sd['stage2.3.attns.0.get_v.weight']
    )
    assert torch.equal(out['stages.1.blocks.3.attn.qkv.weight'], sd['stage2.3.qkv.weight'])
    assert torch.equal(out['stages.0.blocks.0.attn.wa_bias'], sd['stage1.0.attns.0.wa_bias'])


def test_converted_checkpoint_loads_and_runs():
    sd = fake_official('agent-t')
    out, report = convert_cswin({'model': sd}, expected=expected_shapes('agent-t'))
    model = build_target(report)
    missing, unexpected = model.load_state_dict(out, strict=False)
    assert not unexpected and set(missing) == set(report['new'])
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 96, 64))
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize(
    'mutate, match',
    [
        (lambda sd: sd.pop('stage2.1.proj.weight'), 'missing'),
        (lambda sd: sd.update({'stage2.1.extra.weight': torch.zeros(1)}), 'unused'),
        (
            lambda sd: sd.update(
                {'stage3.0.attns.0.get_v.weight': torch.zeros(64, 1, 3, 3, device='meta')}
            ),
            'shape',
        ),
        (
            lambda sd: [sd.pop(k) for k in list(sd) if k.startswith('stage3.17.')],
            'matches no variant',
        ),
    ],
)
def test_refuses_incomplete_or_foreign(mutate, match):
    sd = fake_official('agent-t', 'meta')
    mutate(sd)
    with pytest.raises(ConversionError, match=match):
        convert_cswin(sd, expected=expected_shapes('agent-t'))


def test_refuses_family_and_arch_mismatch_and_foreign():
    sd = fake_official('flatten-t', 'meta')
    with pytest.raises(ConversionError, match='FLatten-CSWin'):
        convert_cswin(sd, family='agent')
    with pytest.raises(ConversionError, match='FLatten-CSWin-tiny'):
        convert_cswin(sd, arch='b')
    with pytest.raises(ConversionError, match='unknown arch'):
        convert_cswin(sd, arch='xl')
    with pytest.raises(ConversionError, match='not an official CSWin'):
        convert_cswin({'patch_embed.proj.weight': torch.zeros(1)})


def test_cli_writes_nothing_on_refusal(tmp_path, capsys):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out.pth'
    sd = fake_official('agent-t')
    torch.save({'model': sd, 'epoch': 299}, src)
    assert _cli.main([str(src), str(dst), '--arch', 's']) == 2
    assert not dst.exists() and 'Agent-CSWin-tiny' in capsys.readouterr().err
    assert _cli.main([str(src), str(dst), '--family', 'agent', '--arch', 't']) == 0
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['arch'] == 'tiny' and saved['meta']['agent_nums'] == [9, 16, 49, 49]
    assert torch.equal(
        saved['state_dict']['stages.0.blocks.0.attn.an_bias'], sd['stage1.0.attns.0.an_bias']
    )
