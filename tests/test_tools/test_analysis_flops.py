"""FLOP counting: the attention handles, every registered op against a hand-derived formula,
and the get_flops tool on the bundled configs.

Convention (the papers'): one multiply-add = one FLOP; a Linear on N tokens costs
``N * C_in * C_out``, a k x k conv ``N_out * C_out * C_in / groups * k * k``, LayerNorm
``5 * numel`` and eval BatchNorm ``2 * numel`` (MMEngine's counters), an adaptive average pool
``numel(input)``; element-wise ops (softmax, scaling, additions) are free.
"""

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.analysis.flops import (
    agent_biases_as_resizes,
    count_flops,
    einsum_macs,
    papers_formulation,
)
from mmattn.analysis.ops import attention_ops, build_op

C, HEADS = 32, 2
H, W = 6, 8
N = H * W


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def test_sdpa_handle():
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 6)
    res = count_flops(_Fn(F.scaled_dot_product_attention), (q, k, v))
    assert res.flops == 2 * 3 * 10 * 12 * (8 + 6)
    assert res.by_operator == {'scaled_dot_product_attention': res.flops}


def test_broadcast_matmul_and_baddbmm():
    # (1, 3, 10, 8) @ (4, 3, 8, 5): the left operand is broadcast over 4; MMEngine's own
    # handle would count it once.
    a, b = torch.randn(1, 3, 10, 8), torch.randn(4, 3, 8, 5)
    assert count_flops(_Fn(torch.matmul), (a, b)).flops == 4 * 3 * 10 * 8 * 5
    bias, x, y = torch.randn(2, 10, 5), torch.randn(2, 10, 7), torch.randn(2, 7, 5)
    assert count_flops(_Fn(torch.baddbmm), (bias, x, y)).flops == 2 * 10 * 7 * 5


def test_einsum():
    a, b = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8)
    fn = _Fn(lambda x, y: torch.einsum('bhnd,bhmd->bhnm', x, y))
    assert count_flops(fn, (a, b)).flops == 2 * 3 * 10 * 12 * 8
    assert einsum_macs('...nd,...md->...nm', [(2, 3, 10, 8), (2, 3, 12, 8)]) == 2 * 3 * 10 * 12 * 8


# ---------------------------------------------------------------- per-op formulas
# Each entry: constructor overrides, the hw_shape and the hand-derived count for B=1.
def _agent():
    a = 4  # 2 x 2 agents
    return (
        dict(with_bias=False, agent_shape=(2, 2)),
        (H, W),
        N * C * 3 * C + N * C + 2 * a * N * C + 2 * N * a * C + N * C * 9 + N * C * C,
    )


def _bra():
    # 5 x 7 map, 2 x 2 regions of 3 x 4 (padded to 6 x 8 before qkv), 2 routed regions.
    h, w, n_win, topk = 5, 7, 2, 2
    rh, rw = math.ceil(h / n_win), math.ceil(w / n_win)
    n_pad, p, w2 = rh * rw * n_win**2, n_win**2, rh * rw
    return (
        dict(n_win=n_win, topk=topk, side_dwconv=3),
        (h, w),
        n_pad * C * 3 * C + n_pad * C * 9 + p * p * C + 2 * topk * n_pad * w2 * C + h * w * C * C,
    )


def _global_lepe():
    return (dict(side_dwconv=3), (H, W), 3 * N * C * C + 2 * N * N * C + N * C * 9 + N * C * C)


def _flatten_linear():
    d = C // HEADS
    # q, kv, normaliser (Q . mean K), K^T V, Q (K^T V), depthwise 3x3 on each head's V, proj
    return (
        dict(kernel_size=3, compute_order='linear'),
        (H, W),
        3 * N * C * C + N * C + N * C * d + N * C * d + N * C * 9 + N * C * C,
    )


def _shunted():
    # sr_ratio 2: group 1 at rate 2 (12 tokens), group 2 at rate 1 (48 tokens), C/2 each.
    total = 2 * N * C * C  # q, proj
    for n_g in (N // 4, N):
        total += N * C * C  # aggregation conv (C x C x r^2 on N / r^2 positions)
        total += 5 * n_g * C  # LayerNorm
        total += n_g * C * C  # kv linear (C -> C/2 | C/2)
        total += n_g * (C // 2) * 9  # local depthwise 3x3 on V
        total += N * n_g * C  # attention of its HEADS/2 heads of C/HEADS channels
    return dict(sr_ratio=2), (H, W), total


def _sra():
    n = N // 4
    return (
        dict(sr_ratio=2),
        (H, W),
        N * C * C + N * C * C + 5 * n * C + 2 * n * C * C + 2 * N * n * C + N * C * C,
    )


def _eamlp():
    s, r = 8, 4
    return (
        dict(num_slots=s, expand_ratio=r),
        (H, W),
        N * C * r * C + 2 * (N * r * C) * s + N * r * C * C,
    )


def _ea_map():
    s = 8
    return (dict(num_slots=s), (H, W), N * C * C + 2 * N * C * s + N * C * C + 2 * N * C)


def _swin_msa():
    # 5 x 7 map padded to 2 x 2 shifted windows of 3 x 4; qkv and proj run on the padding too.
    n_pad = 48
    return (
        dict(window_size=(3, 4), shift=True),
        (5, 7),
        3 * n_pad * C * C + 2 * n_pad * 12 * C + n_pad * C * C,
    )


FORMULAS = {
    'AgentAttention': _agent,
    'BiLevelRoutingAttention': _bra,
    'GlobalAttentionLePE': _global_lepe,
    'FocusedLinearAttention': _flatten_linear,
    'ShuntedSelfAttention': _shunted,
    'SpatialReductionAttention': _sra,
    'MultiHeadExternalAttention': _eamlp,
    'ExternalAttention': _ea_map,
    'ShiftWindowMSA': _swin_msa,
    'SoftmaxAttention': lambda: ({}, (H, W), 4 * N * C * C + 2 * N * N * C),
    'SoftmaxAttention-SDPA': lambda: ({}, (H, W), 4 * N * C * C + 2 * N * N * C),
}

REGISTERED = list(attention_ops())
WITH_FORMULA = [
    n for n in ['SoftmaxAttention', 'SoftmaxAttention-SDPA', *REGISTERED] if n in FORMULAS
]


@pytest.mark.parametrize('name', WITH_FORMULA)
def test_op_flops_match_formula(name):
    kwargs, hw, expected = FORMULAS[name]()
    op = build_op(name, C, HEADS, **kwargs)
    x = torch.randn(1, hw[0] * hw[1], C)
    res = count_flops(op, (x, hw))
    assert res.uncounted_products == {}, res.unsupported
    assert res.flops == expected, (res.flops, expected, res.by_operator)


PRODUCT_KEYS = (
    'linear',
    'matmul',
    'bmm',
    'baddbmm',
    'addbmm',
    'addmm',
    'einsum',
    'conv',
    'scaled_dot_product_attention',
)


@pytest.mark.parametrize('name', ['SoftmaxAttention-SDPA', *REGISTERED])
def test_every_op_agrees_with_torch_dispatch_counter(name):
    """Whatever op lands: our multiply-adds of products equal half of the FLOPs that torch's
    dispatcher-level counter sees with SDPA decomposed into its math kernel (that counter
    alone misses the CPU flash kernel of SDPA), on an odd map."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    op = build_op(name, C, HEADS)
    x, hw = torch.randn(1, 15 * 17, C), (15, 17)
    res = count_flops(op, (x, hw))
    assert res.uncounted_products == {}, res.unsupported
    # AgentAttention: the FLOP counter traces the official bias formulation (resizes, no
    # products; see papers_formulation); count the eager run in that formulation too
    with (
        FlopCounterMode(display=False) as counter,
        sdpa_kernel(SDPBackend.MATH),
        torch.no_grad(),
        papers_formulation(op),
    ):
        op(x, hw)
    ours = sum(v for k, v in res.by_operator.items() if k in PRODUCT_KEYS)
    assert ours == counter.get_total_flops() // 2, res.by_operator


def test_ops_are_discovered():
    # The analyses iterate over this: it must find the token mixers and no plugin duplicate.
    ops = attention_ops()
    assert ops
    for name, cls in ops.items():
        assert not any(cls is not o and issubclass(cls, o) for o in ops.values()), name


def test_get_flops_tool(tool, tmp_path):
    out = tmp_path / 'flops.json'
    proc = tool(
        'analysis_tools/get_flops.py',
        'configs/shapes/fpn_r18_shapes.py',
        '--shape',
        '64',
        '96',
        '--json',
        out,
    )
    assert 'FLOPs:' in proc.stdout
    res = json.loads(out.read_text())
    assert res['shape'] == [64, 96] and res['task'] == 'seg'
    assert res['uncounted_products'] == {}
    back = tmp_path / 'bb.json'
    tool(
        'analysis_tools/get_flops.py',
        'configs/shapes/fpn_r18_shapes.py',
        '--shape',
        '64',
        '96',
        '--backbone-only',
        '--json',
        back,
    )
    bb = json.loads(back.read_text())
    assert 0 < bb['flops'] < res['flops'] and 0 < bb['params'] < res['params']


@pytest.mark.parametrize('agent_shape', [None, (5, 4)])
def test_counted_agent_biases_equal_the_ops(agent_shape):
    """The formulation the counter traces gives the op's own biases (float64), and the op is
    restored after counting."""
    from mmattn.models.attentions import AgentAttention

    op = AgentAttention(32, 2, pretrain_hw=(7, 6), agent_num=9, agent_shape=agent_shape).double()
    for p in op.parameters():
        torch.nn.init.normal_(p)
    for hw in [(7, 6), (11, 9)]:
        for ours, official in zip(op.agent_biases(hw), agent_biases_as_resizes(op, hw)):
            torch.testing.assert_close(ours, official, rtol=0, atol=1e-12)
    with papers_formulation(op):
        assert op.fused_attn is False
    assert op.fused_attn is True and 'agent_biases' not in vars(op)
