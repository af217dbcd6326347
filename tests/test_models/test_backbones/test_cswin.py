"""CSWin / AgentCSWin / FLattenCSWin: shapes and strides, op layouts and stage facts,
freezing, norm_eval, with_cp, out_norms, params against the official key fixture."""

import json
import math
import os.path as osp

import pytest
import torch

from mmattn.models.attentions.agent_attention import AgentAttention
from mmattn.models.attentions.cross_shaped_window_attention import CSWinAttention
from mmattn.models.attentions.focused_linear_attention import FocusedLinearAttention
from mmattn.models.backbones.cswin import AgentCSWin, CSWin, FLattenCSWin
from mmattn.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TINY = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[2, 2, 4, 4])


def _build(cls=AgentCSWin, **kw):
    torch.manual_seed(0)
    return cls(arch=TINY, **kw)


def _stage_sizes(hw):
    size = ((hw[0] - 3) // 4 + 1, (hw[1] - 3) // 4 + 1)  # 7x7 stride-4 conv, padding 2
    sizes = [size]
    for _ in range(3):
        size = (-(-size[0] // 2), -(-size[1] // 2))  # 3x3 stride-2 conv, padding 1
        sizes.append(size)
    return sizes


@pytest.mark.parametrize('cls', [CSWin, AgentCSWin, FLattenCSWin])
@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_strides_and_channels(cls, hw):
    m = _build(cls).eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *hw))
    for i, (o, size) in enumerate(zip(outs, _stage_sizes(hw))):
        assert o.shape == (1, 16 * 2**i, *size)
        assert o.is_contiguous() and torch.isfinite(o).all()


def test_official_layouts_and_stage_facts():
    m = AgentCSWin('t', drop_path_rate=0.0)
    assert [len(s.blocks) for s in m.stages] == [2, 4, 18, 1]
    for i, (hw, agents) in enumerate(zip([56, 28], [9, 16])):
        for blk in m.stages[i].blocks:
            a = blk.attn
            assert isinstance(a, AgentAttention)
            assert a.agent_num == agents and a.pretrain_hw == (hw, hw)
            assert a.ah_bias.shape == (1, 2 * 2**i, agents, hw, 1)
            assert a.dwc.kernel_size == (3, 3)  # the official LePE get_v
    assert [b.attn.split_size for b in m.stages[2].blocks] == [7] * 18
    assert isinstance(m.stages[3].blocks[0].attn, CSWinAttention)
    assert m.stages[3].blocks[0].attn.split_size is None  # last stage: global
    f = FLattenCSWin('s', drop_path_rate=0.0)
    assert [len(s.blocks) for s in f.stages] == [2, 4, 32, 2]
    lin = f.stages[1].blocks[0].attn
    assert isinstance(lin, FocusedLinearAttention)
    assert lin.positional_encoding.shape == (1, 28 * 28, 128)
    assert lin.lepe.kernel_size == (3, 3) and lin.dwc.kernel_size == (5, 5)
    assert lin.focusing_factor == 3
    c = CSWin('t')
    assert [b.attn.split_size for b in c.stages[0].blocks] == [1]
    assert [b.attn.split_size for b in c.stages[1].blocks] == [2, 2]


def test_arch_tables():
    assert AgentCSWin.parse_arch('b') == dict(
        embed_dims=96, depths=[3, 6, 29, 2], num_heads=[4, 8, 16, 32], split_sizes=[1, 2, 7, 7]
    )
    assert FLattenCSWin.parse_arch('small')['depths'] == [2, 4, 32, 2]
    assert AgentCSWin.parse_arch('small')['depths'] == [3, 6, 29, 2]
    with pytest.raises(ValueError, match='unknown arch'):
        AgentCSWin('xl')
    with pytest.raises(ValueError, match='agent_nums'):
        AgentCSWin(TINY, agent_nums=(9, 16))


def _fixture_params(name):
    with open(osp.join(REPO, 'tests', 'data', 'cswin_official_keys.json')) as f:
        keys = json.load(f)[name]
    return sum(math.prod(s) for k, s in keys.items() if not k.startswith(('head.', 'norm.')))


@pytest.mark.parametrize('name', ['agent-t', 'flatten-t'])
def test_params_equal_official_without_classifier(name):
    cls = AgentCSWin if name.startswith('agent') else FLattenCSWin
    m = MODELS.build(dict(type=f'mmattn.{cls.__name__}', arch=name[-1], out_norms=False))
    assert sum(p.numel() for p in m.parameters()) == _fixture_params(name)
    m = cls(name[-1])  # plus one LayerNorm per output
    assert sum(p.numel() for p in m.parameters()) == _fixture_params(name) + 2 * (
        64 + 128 + 256 + 512
    )


def test_out_norms_and_out_indices():
    x = torch.randn(1, 3, 64, 80)
    a = _build(out_norms=True, drop_path_rate=0.0).eval()
    b = _build(out_norms=False, drop_path_rate=0.0).eval()
    assert not any(k.startswith('norm') for k in b.state_dict())
    b.load_state_dict({k: v for k, v in a.state_dict().items() if not k.startswith('norm')})
    with torch.no_grad():
        for i, (na, nb) in enumerate(zip(a(x), b(x))):
            ln = getattr(a, f'norm{i}')
            ref = ln(nb.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(na.shape)
            torch.testing.assert_close(na, ref)
    m = _build(out_indices=(1, 2))
    assert len(m.stages) == 3 and not hasattr(m, 'norm3') and not hasattr(m, 'norm0')
    assert [o.shape[1] for o in m(x)] == [32, 64]


def test_frozen_stages_and_norm_eval():
    m = _build(frozen_stages=2, norm_eval=True)
    m.train()
    assert not any(p.requires_grad for p in m.patch_embed.parameters())
    for i, stage in enumerate(m.stages):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert stage.training != frozen
        assert getattr(m, f'norm{i}').weight.requires_grad != frozen


def test_with_cp_same_output_and_grads():
    x = torch.randn(1, 3, 45, 61)
    ref, cp_model = _build(drop_path_rate=0.0), _build(drop_path_rate=0.0, with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    outs_a = ref.train()(x.clone().requires_grad_())
    outs_b = cp_model.train()(x.clone().requires_grad_())
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in outs_a).backward()
    sum(o.sum() for o in outs_b).backward()
    for (n, pa), pb in zip(ref.named_parameters(), cp_model.parameters()):
        assert pa.grad is not None, n
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5, msg=n)


def test_drop_path_linear_over_blocks():
    m = _build(drop_path_rate=0.5)
    rates = [
        blk.drop_path.drop_prob if hasattr(blk.drop_path, 'drop_prob') else 0.0
        for s in m.stages
        for blk in s.blocks
    ]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.5, 5))
