"""Discover the registered attention ops and build them at a common width for the analyses.

The tools never hard-code the list of ops: every class registered in ``mmattn.MODELS`` whose
``__init__`` takes ``embed_dims`` and whose ``forward`` takes ``hw_shape`` is a token op (so
an op registered from any module, a user's own included, is found), as is every class
registered from ``mmattn.models.attentions`` that works on NCHW maps (``in_channels``). Ops
on tokens (``forward(x, hw_shape)``) are used as they are; ops on NCHW maps (``forward(x)``,
e.g. the EANet module) are wrapped so they take tokens too. Subclasses of another op (e.g. a
plugin flavour of the same module) are left out as duplicates, and so are private classes
(registered under a name that starts with ``_``, e.g. the tests' helper ops).
"""

import inspect
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.models.layers.attn_builder import op_layout
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map

#: Settings that make an op look like it does in stage 1 of its backbone (the other
#: constructor arguments keep their defaults); an op not listed here runs with its defaults.
STAGE1_KWARGS: Dict[str, dict] = {
    'ShuntedSelfAttention': dict(sr_ratio=8),
    'SpatialReductionAttention': dict(sr_ratio=8),
    'BiLevelRoutingAttention': dict(n_win=7, topk=4),
    'CSWinAttention': dict(split_size=1),
}

BASELINE = 'SoftmaxAttention'


class SoftmaxAttention(nn.Module):
    """Plain multi-head softmax attention over all tokens: the baseline of the analyses.

    ``proj(softmax(s Q K^T) V)`` with ``Q, K, V = qkv(x)``; the attention matrix is written
    out (``fused_attn=False``, the textbook cost) or left to
    ``F.scaled_dot_product_attention``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        fused_attn (bool): Use the fused kernel. Defaults to False.
    """

    def __init__(self, embed_dims: int, num_heads: int, fused_attn: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.fused_attn = fused_attn
        self.scale = (embed_dims // num_heads) ** -0.5
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            out = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MapOpAdapter(nn.Module):
    """Runs an NCHW op (``forward(x)`` on ``(B, C, H, W)``) on ``(B, N, C)`` tokens."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        return map_to_tokens(self.op(tokens_to_map(x, hw_shape)))


def attention_ops() -> Dict[str, type]:
    """Registered attention ops, name -> class, in registration order."""
    import mmattn.models  # noqa: F401  (registers everything)
    from mmattn.registry import MODELS

    found = {}
    for name, cls in MODELS.module_dict.items():
        if not inspect.isclass(cls) or name.startswith('_'):  # '_Name': private (test helpers)
            continue
        layout = op_layout(cls)
        # NCHW modules are ops only in the attentions package (heads take in_channels too).
        if layout == 'tokens' or (
            layout == 'map' and cls.__module__.startswith('mmattn.models.attentions')
        ):
            found[name] = cls
    # A subclass of another op is a flavour of it (e.g. a plugin wrapper): keep the parent.
    return {
        n: c
        for n, c in found.items()
        if not any(c is not o and issubclass(c, o) for o in found.values())
    }


def build_op(name: str, embed_dims: int, num_heads: int, **kwargs) -> nn.Module:
    """Op ``name`` (or the :data:`BASELINE`) at a common width, in eval mode.

    Token ops are built by the skeletons' own builder
    (:func:`mmattn.models.layers.attn_builder.build_attention`): ``embed_dims`` always,
    ``num_heads`` only to ops that take it, :data:`STAGE1_KWARGS` and ``kwargs`` as the config.
    NCHW ops get ``in_channels`` and are wrapped to take tokens.
    """
    if name == BASELINE:
        return SoftmaxAttention(embed_dims, num_heads, **kwargs).eval()
    if name == BASELINE + '-SDPA':
        return SoftmaxAttention(embed_dims, num_heads, fused_attn=True, **kwargs).eval()
    from mmattn.models.layers.attn_builder import build_attention
    from mmattn.registry import build_module

    ops = attention_ops()
    if name not in ops:
        raise KeyError(f'unknown attention op {name!r}; registered: {", ".join(ops)}')
    cfg = dict(STAGE1_KWARGS.get(name, {}), **kwargs, type=name)
    if op_layout(ops[name]) == 'map':
        return MapOpAdapter(build_module(dict(cfg, in_channels=embed_dims))).eval()
    return build_attention(cfg, dict(embed_dims=embed_dims), dict(num_heads=num_heads)).eval()


def min_side(name: str) -> int:
    """Smallest map side an op accepts with :data:`STAGE1_KWARGS` (its reduction rate)."""
    return int(STAGE1_KWARGS.get(name, {}).get('sr_ratio', 1))


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (the growth exponent)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return float('nan')
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    return sxy / sxx if sxx else float('nan')
