"""Attention-map extractors for every registered op, and the tool on the bundled data."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmattn.analysis.attention_maps import Record, op_maps
from mmattn.analysis.ops import attention_ops, build_attention

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DISTRIBUTIONS = ('agent composite', 'BRA', 'FLatten', 'Shunted', 'SSA', 'EA composite',
                 'EA slot', 'input-gradient')


@pytest.mark.parametrize('name', list(attention_ops()))
def test_maps_of_every_op(name):
    torch.manual_seed(0)
    op = build_attention(name, 32, 2)
    hw = (16, 12)
    maps = op_maps(Record('op', op, torch.randn(1, hw[0] * hw[1], 32), hw), (0.3, 0.6))
    assert maps
    for m in maps:
        assert m.map.ndim == 2 and np.isfinite(m.map).all() and (m.map >= 0).all()
        # every map covers the whole image (its own grid: tokens, or reduced keys)
        assert m.map.shape[0] <= hw[0] and m.map.shape[1] <= hw[1]
        if m.title.startswith(DISTRIBUTIONS):
            assert m.map.sum() == pytest.approx(1, abs=1e-4), m.title


def _single_head_output(op, x, hw):
    """The op's attention output at every token before the output projection."""
    captured = {}
    handle = op.proj.register_forward_pre_hook(lambda m, a: captured.setdefault('x', a[0]))
    with torch.no_grad():
        op(x, hw)
    handle.remove()
    return captured['x'][0]


@pytest.mark.parametrize('name', ['AgentAttention', 'BiLevelRoutingAttention'])
def test_map_reproduces_the_op_output(name):
    """With one head and the local conv zeroed, the op's output at the query equals the map
    weighted sum of the values: the drawn map is exactly what the op used."""
    if name not in attention_ops():
        pytest.fail(f'{name} is not registered')
    torch.manual_seed(0)
    kwargs = dict(n_win=3, topk=2) if name == 'BiLevelRoutingAttention' else dict(
        agent_shape=(3, 3))
    op = build_attention(name, 16, 1, **kwargs)
    conv = op.dwc if name == 'AgentAttention' else op.lepe
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    hw = (10, 11)  # not a multiple of the regions: BRA pads
    x = torch.randn(1, 110, 16)
    out = _single_head_output(op, x, hw)
    q = (4, 7)
    m = op_maps(Record('op', op, x, hw), ((q[0] + .5) / hw[0], (q[1] + .5) / hw[1]))[0]
    c = 16
    with torch.no_grad():
        v = op.qkv(x)[0, :, -c:]  # (N, C): V is the last C channels of qkv for both ops
    expected = torch.from_numpy(m.map).float().reshape(-1) @ v
    if name == 'BiLevelRoutingAttention':
        # padded tokens (zero input -> V = bias) can be routed to; add their share
        weight_inside = float(m.map.sum())
        expected = expected + (1 - weight_inside) * op.qkv.bias[-c:].detach()
    torch.testing.assert_close(out[q[0] * hw[1] + q[1]], expected, atol=1e-5, rtol=1e-4)


def _attention_shapes_configs():
    out = []
    ops = set(attention_ops())
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'shapes', '*.py'))):
        backbone = Config.fromfile(path).model.backbone
        if str(backbone.get('type', '')).startswith('mmattn.') or any(
                op in str(backbone) for op in ops):
            out.append(osp.relpath(path, REPO))
    return out


@pytest.mark.parametrize('config', _attention_shapes_configs())
def test_attention_map_tool(tool, shapes_data, tmp_path, config):
    img = sorted(glob.glob(osp.join(shapes_data['ade'], 'images', 'validation', '*.jpg')))[0]
    out = tmp_path / 'map.png'
    proc = tool('visualization/attention_map.py', img, config, '--point', '40', '70', '--out',
                out, '--size', '128')
    assert 'map(s)' in proc.stdout
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
