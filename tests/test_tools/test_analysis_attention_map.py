"""Attention maps of every registered op (the weights each op records), and the tool on the
bundled data."""

import glob
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmattn.analysis.attention_maps import op_maps, record_attention_calls
from mmattn.analysis.ops import attention_ops, build_op
from mmattn.models.attentions import BaseAttention

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# (window maps are not: a window that reaches into the padding gives it weight)
DISTRIBUTIONS = (
    'agent composite',
    'BRA',
    'FLatten',
    'Shunted',
    'SSA',
    'EA composite',
    'EA slot',
    'input-gradient',
    'SRA',
    'global',
)


def _record(op, x, hw):
    """The op's calls while it runs on ``x`` (one call, with its recorded weights)."""
    records = record_attention_calls(op, lambda: op(x, hw))
    assert len(records) == 1
    return records[0]


@pytest.mark.parametrize('name', list(attention_ops()))
def test_maps_of_every_op(name):
    torch.manual_seed(0)
    op = build_op(name, 32, 2)
    hw = (16, 12)
    rec = _record(op, torch.randn(1, hw[0] * hw[1], 32), hw)
    ops = [m for m in op.modules() if isinstance(m, BaseAttention)]
    if ops:  # the op recorded the weights it computed, and recording is off again
        assert rec.weights and all(o.attention_sink is None for o in ops)
    maps = op_maps(rec, (0.3, 0.6))
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


@pytest.mark.parametrize(
    'name',
    [
        'AgentAttention',
        'BiLevelRoutingAttention',
        'SpatialReductionAttention',
        'GlobalAttentionLePE',
    ],
)
def test_map_reproduces_the_op_output(name):
    """With one head and the local conv zeroed, the op's output at the query equals the map
    weighted sum of the values: the drawn map is exactly what the op used."""
    if name not in attention_ops():
        pytest.fail(f'{name} is not registered')
    torch.manual_seed(0)
    kwargs = dict(
        BiLevelRoutingAttention=dict(n_win=3, topk=2),
        AgentAttention=dict(agent_shape=(3, 3)),
        SpatialReductionAttention=dict(sr_ratio=1),
        GlobalAttentionLePE=dict(),
    )[name]
    op = build_op(name, 16, 1, **kwargs)
    conv = dict(
        AgentAttention='dwc', BiLevelRoutingAttention='lepe', GlobalAttentionLePE='lepe'
    ).get(name)
    if conv:
        nn.init.zeros_(getattr(op, conv).weight)
        nn.init.zeros_(getattr(op, conv).bias)
    hw = (10, 11)  # not a multiple of the regions: BRA pads
    x = torch.randn(1, 110, 16)
    out = _single_head_output(op, x, hw)
    q = (4, 7)
    m = op_maps(_record(op, x, hw), ((q[0] + 0.5) / hw[0], (q[1] + 0.5) / hw[1]))[0]
    c = 16
    with torch.no_grad():
        # (N, C): V is the last C channels of qkv (or kv)
        v = (op.kv if hasattr(op, 'kv') else op.qkv)(x)[0, :, -c:]
    expected = torch.from_numpy(m.map).float().reshape(-1) @ v
    if name == 'BiLevelRoutingAttention':
        # padded tokens (zero input -> V = bias) can be routed to; add their share
        weight_inside = float(m.map.sum())
        expected = expected + (1 - weight_inside) * op.qkv.bias[-c:].detach()
    torch.testing.assert_close(out[q[0] * hw[1] + q[1]], expected, atol=1e-5, rtol=1e-4)


def test_window_map_follows_the_shift():
    """A shifted-window map covers exactly the query's (rolled) window, sums to 1, and
    reproduces the op's output before the projection."""
    torch.manual_seed(0)
    op = build_op('ShiftWindowMSA', 16, 1, window_size=4, shift=True)
    hw = (10, 9)  # padded to 12 x 12, rolled by 2
    x = torch.randn(1, 90, 16)
    q = (0, 0)  # rolled to the last window with the bottom-right corner: split regions
    m = op_maps(_record(op, x, hw), ((q[0] + 0.5) / hw[0], (q[1] + 0.5) / hw[1]))[0]
    assert m.title.startswith('shifted window')
    assert m.map.sum() == pytest.approx(1, abs=1e-4)
    # the -100 mask keeps the query's own region: rows/cols 0-1 of the (unrolled) map
    support = np.argwhere(m.map > 1e-6)
    assert support.max(0).tolist() == [1, 1] and support.min(0).tolist() == [0, 0]
    with torch.no_grad():
        v = op.qkv(x)[0, :, -16:]
        # the projection is per token (the op applies it in window order)
        expected = op.proj(torch.from_numpy(m.map).float().reshape(-1) @ v)
        out = op(x, hw)[0, q[0] * hw[1] + q[1]]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def _attention_shapes_configs():
    out = []
    ops = set(attention_ops())
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'shapes', '*.py'))):
        backbone = Config.fromfile(path).model.backbone
        if str(backbone.get('type', '')).startswith('mmattn.') or any(
            op in str(backbone) for op in ops
        ):
            out.append(osp.relpath(path, REPO))
    return out


@pytest.mark.parametrize('config', _attention_shapes_configs())
def test_attention_map_tool(tool, shapes_data, tmp_path, config):
    img = sorted(glob.glob(osp.join(shapes_data['ade'], 'images', 'validation', '*.jpg')))[0]
    out = tmp_path / 'map.png'
    proc = tool(
        'visualization/attention_map.py',
        img,
        config,
        '--point',
        '40',
        '70',
        '--out',
        out,
        '--size',
        '128',
    )
    assert 'map(s)' in proc.stdout
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
