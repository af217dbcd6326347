"""Any registered attention op as a plug-in for CNN feature maps: :class:`AttentionPlugin`.

A CNN hands a plug-in an ``(B, C, H, W)`` map and its channel count ``C`` only (mmcv's
``build_plugin_layer`` passes ``in_channels``), while the ops here take ``(B, N, C)`` tokens plus
``hw_shape`` and skeleton facts (heads, reduction rate, windows, regions, agents) that a CNN does
not have. The plug-in is the adapter, in the way of mmcv's ``GeneralizedAttention``,
``NonLocal2d`` and ``ContextBlock``: it derives those facts from ``C`` and a nominal map size by
one rule per fact (:func:`plugin_facts`), builds the op with the skeletons' own builder
(:func:`~mmattn.models.layers.attn_builder.build_attention`, so an op receives only the facts
its ``__init__`` declares), and adds the op's output to its input through a zero-initialised
per-channel scale, so a freshly inserted plug-in is the identity and a pretrained CNN is
unchanged at insertion.

Any op registered later, a user's own through ``custom_imports`` included, is a plug-in with no
edit here: the facts are offered by parameter name, never by op type.
"""

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmattn.models.layers.attn_builder import build_attention, op_class, op_layout
from mmattn.models.layers.tokens import map_to_tokens, pad_map_to, tokens_to_map
from mmattn.registry import MODELS

__all__ = ['AttentionPlugin', 'plugin_facts', 'plugin_heads']

#: Channels per head the default head count aims at (Swin's 32).
HEAD_CHANNELS = 32
#: Side of the key grid the default reduction rate aims at on the nominal map.
KEY_GRID = 8
#: Side of Swin's windows, BiFormer's regions-per-side and Agent's agent grid at ImageNet size.
GRID7 = 7


def plugin_heads(channels: int, even: bool = False) -> int:
    """The default head count: the largest divisor of ``channels`` that is at most
    ``channels // 32`` (heads of at least 32 channels, Swin's width), at least 1; with ``even``,
    the largest even such divisor, at least 2 (Shunted's two head groups)."""
    top = max(2 if even else 1, channels // HEAD_CHANNELS)
    for heads in range(top, 0, -1):
        if channels % heads == 0 and (not even or heads % 2 == 0):
            return heads
    raise ValueError(f'no even head count divides {channels} channels; give num_heads in attn_cfg')


def _reduction(side: int) -> int:
    """Largest power of two ``r`` with ``side / r >= 8`` (at least 1)."""
    return 2 ** max(0, int(math.floor(math.log2(max(side, 1) / KEY_GRID))))


FactRule = Callable[[int, Tuple[int, int]], object]

#: The default of each fact an op may declare, from the channels ``c`` and the nominal map
#: ``hw``. Offered to an op only if its ``__init__`` has a parameter of that name.
FACT_RULES: Dict[str, FactRule] = {
    'num_heads': lambda c, hw: plugin_heads(c),
    # keys on about an 8 x 8 grid at the nominal map (PVT's 7 x 7 at 224 input, rounded)
    'sr_ratio': lambda c, hw: _reduction(min(hw)),
    # learned position tables (Agent biases, FLatten's encoding) sized for the nominal map
    'pretrain_hw': lambda c, hw: tuple(hw),
    'window_size': lambda c, hw: min(GRID7, min(hw)),
    # regions of about 4 x 4 tokens, at most BiFormer's 7 x 7 regions
    'n_win': lambda c, hw: max(1, min(GRID7, min(hw) // 4)),
    'agent_num': lambda c, hw: min(GRID7, min(hw)) ** 2,
}

#: Per-type exceptions to :data:`FACT_RULES` for the shipped ops (types not listed here use
#: the generic rules only).
TYPE_RULES: Dict[str, Dict[str, FactRule]] = {
    # two head groups (rates r and r / 2) need an even head count
    'ShuntedSelfAttention': {'num_heads': lambda c, hw: plugin_heads(c, even=True)},
    # half the heads in horizontal stripes, half in vertical ones
    'CSWinAttention': {'num_heads': lambda c, hw: plugin_heads(c, even=True)},
    # linear in the tokens: full-resolution keys are affordable
    'FocusedLinearAttention': {'sr_ratio': lambda c, hw: 1},
    # the plug-in adds the residual; the EANet module's own ReLU after its sum would clip it
    'ExternalAttention': {'act_cfg': lambda c, hw: None},
}


def _pair(x: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(x, int) and not isinstance(x, bool):
        pair = (x, x)
    elif isinstance(x, (list, tuple)) and len(x) == 2:
        pair = (int(x[0]), int(x[1]))
    else:
        raise ValueError(f'map_size must be an int or (H, W), got {x!r}')
    if min(pair) < 1:
        raise ValueError(f'map_size must be positive, got {x!r}')
    return pair


def plugin_facts(
    op_type: Union[str, type], in_channels: int, map_size: Union[int, Sequence[int]] = 32
) -> dict:
    """The defaults :class:`AttentionPlugin` derives for an op (before ``attn_cfg``'s keys).

    Args:
        op_type (str | type): A registered op name or class.
        in_channels (int): Channels of the map.
        map_size (int | tuple[int, int]): The nominal map ``(H, W)``.

    Returns:
        dict: Every fact of :data:`FACT_RULES` / :data:`TYPE_RULES`, with its value for this op
        (the op receives only those its ``__init__`` declares).
    """
    hw = _pair(map_size)
    cls = op_class(op_type)
    rules = dict(FACT_RULES)
    rules.update(TYPE_RULES.get(cls.__name__, {}))
    return {name: rule(in_channels, hw) for name, rule in rules.items()}


@MODELS.register_module()
class AttentionPlugin(BaseModule):
    """An attention op on ``(B, C, H, W)`` maps: ``x + gamma * attn(norm(x))``.

    Use it wherever a CNN takes mmcv plug-ins, e.g. MMDetection's or MMSegmentation's ResNet::

        plugins=[dict(cfg=dict(type='mmattn.AttentionPlugin',
                               attn_cfg=dict(type='AgentAttention')),
                      stages=(False, False, True, True), position='after_conv2')]

    or on a neck's levels through :class:`~mmattn.models.plugins.AttentionNeck`.

    The op is built from ``attn_cfg`` with ``embed_dims=in_channels`` (``in_channels`` for an
    NCHW op) and the defaults of :func:`plugin_facts` that its ``__init__`` declares; keys in
    ``attn_cfg`` override them. The default rules (``C`` the channels, ``S`` the shorter side
    of ``map_size``):

    ====================  ===============================================================
    ``num_heads``         largest divisor of ``C`` up to ``C // 32`` (Shunted, CSWin: even, >= 2)
    ``sr_ratio``          largest power of two with ``S / r >= 8`` (FLatten: 1)
    ``pretrain_hw``       ``map_size``
    ``window_size``       ``min(7, S)``
    ``n_win``             ``clamp(S // 4, 1, 7)``
    ``agent_num``         ``min(7, S) ** 2``
    ====================  ===============================================================

    Token ops (``forward(x, hw_shape)``) run on the layer-normalised tokens of the map; a map
    smaller than the op's ``sr_ratio`` is zero-padded at the bottom/right to ``sr_ratio`` and the
    result cropped back (the reduction convs need a whole cell). NCHW ops (``forward(x)``, e.g.
    the EANet module) follow mmcv's plug-in convention of returning ``x`` plus their branch, so
    their branch is ``op(x) - x``.

    ``gamma`` (one scale per channel) starts at ``layer_scale_init``: at 0 the plug-in returns
    its input exactly, as mmcv's ``GeneralizedAttention`` (``gamma = 0``) and ``NonLocal2d``
    (zero-initialised output conv) do, so ImageNet CNN weights compute what they computed
    without it; the first optimiser step makes ``gamma`` non-zero, and from then on the op
    learns.

    Args:
        in_channels (int): Channels ``C`` of the map (mmcv's ``build_plugin_layer`` passes it).
        attn_cfg (dict): The op: ``dict(type=<registered op>, **overrides)``.
        map_size (int | tuple[int, int]): Nominal ``(H, W)`` of the maps this plug-in sees,
            from which the defaults are derived; any other size runs too. Defaults to 32.
        norm_cfg (dict, optional): Norm of the tokens before a token op; None for none.
            Defaults to ``dict(type='LN')``.
        layer_scale_init (float): Initial value of ``gamma``. Defaults to 0 (identity).
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    _abbr_ = 'attn_plugin'

    def __init__(
        self,
        in_channels: int,
        attn_cfg: dict,
        map_size: Union[int, Sequence[int]] = 32,
        norm_cfg: Optional[dict] = dict(type='LN'),
        layer_scale_init: float = 0.0,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(attn_cfg, dict) or 'type' not in attn_cfg:
            raise TypeError(
                f'AttentionPlugin: attn_cfg must be a dict with "type" (a registered '
                f'attention op), got {attn_cfg!r}'
            )
        cls = op_class(attn_cfg['type'])
        self.layout = op_layout(cls)
        if self.layout is None:
            raise TypeError(
                f'AttentionPlugin: {cls.__name__} is not an attention op: its __init__ must take '
                '`embed_dims` and its forward `(x, hw_shape)` (token op), or take `in_channels` '
                'and `forward(x)` on NCHW maps'
            )
        self.in_channels = int(in_channels)
        self.map_size = _pair(map_size)
        facts = plugin_facts(cls, self.in_channels, self.map_size)
        common = (
            dict(embed_dims=self.in_channels)
            if self.layout == 'tokens'
            else dict(in_channels=self.in_channels)
        )
        self.attn = build_attention(dict(attn_cfg), common, facts)
        self.norm = (
            build_norm_layer(norm_cfg, self.in_channels)[1]
            if norm_cfg is not None and self.layout == 'tokens'
            else nn.Identity()
        )
        rate = getattr(self.attn, 'sr_ratio', 1)
        #: maps with a side below this are padded for the op (its reduction cell)
        self.min_side = rate if isinstance(rate, int) and rate > 1 else 1
        self.layer_scale_init = float(layer_scale_init)
        self.gamma = nn.Parameter(torch.full((self.in_channels,), self.layer_scale_init))

    def init_weights(self) -> None:
        """The op's own init, then ``gamma`` back to ``layer_scale_init``: a host's init
        (e.g. a constant init of every parameter) must not make the new plug-in active."""
        super().init_weights()
        if self.init_cfg is None:
            with torch.no_grad():
                self.gamma.fill_(self.layer_scale_init)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, map_size={self.map_size}'

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The attention branch (before ``gamma``), ``(B, C, H, W)``."""
        if self.layout == 'map':
            return self.attn(x) - x
        b, c, h, w = x.shape
        tokens = self.norm(map_to_tokens(x))
        hp, wp = max(h, self.min_side), max(w, self.min_side)
        if (hp, wp) != (h, w):
            tokens = pad_map_to(tokens.reshape(b, h, w, c), (hp, wp)).reshape(b, hp * wp, c)
        out = tokens_to_map(self.attn(tokens, (hp, wp)), (hp, wp))
        return out[:, :, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): ``(B, C, H, W)``. Returns: Tensor: the same shape and layout."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'AttentionPlugin: expected a (B, {self.in_channels}, H, W) map, '
                f'got shape {tuple(x.shape)}; in_channels must be the channels '
                'of the map it is inserted on'
            )
        out = x + self.gamma.view(1, -1, 1, 1) * self.branch(x)
        # keep the input's memory layout: mmcv's RoIAlign reads any map as NCHW memory
        fmt = (
            torch.channels_last
            if (x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
            else torch.contiguous_format
        )
        return out.contiguous(memory_format=fmt)
