"""Shunted self-attention (SSA).

Reference: Ren et al., "Shunted Self-Attention via Multi-Scale Token Aggregation", CVPR 2022
(arXiv 2111.15193); official code https://github.com/OliverRensu/Shunted-Transformer (``SSA.py``).
"""

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model.weight_init import constant_init, trunc_normal_init

from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.models.layers.weight_init import conv_fan_out_init
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['ShuntedSelfAttention', 'check_shunted_rate']


def check_shunted_rate(sr_ratio, num_heads: int) -> None:
    """Raise ``ValueError`` unless ``sr_ratio`` is an aggregation rate SSA can use.

    Rate 1 is plain attention. A rate ``r > 1`` splits the heads into two equal groups that
    aggregate with kernel = stride = ``r`` and ``r / 2``, so ``r`` must be an even integer and
    the number of heads must be even.
    """
    if isinstance(sr_ratio, bool) or not isinstance(sr_ratio, int) or sr_ratio < 1:
        raise ValueError(f'sr_ratio must be an integer >= 1, got {sr_ratio!r}')
    if sr_ratio > 1 and sr_ratio % 2:
        raise ValueError(
            f'sr_ratio={sr_ratio} is not supported: with r > 1 the second head group '
            f'aggregates at rate r/2, so r must be even (1, 2, 4, 6, 8, ...)'
        )
    if sr_ratio > 1 and num_heads % 2:
        raise ValueError(
            f'num_heads={num_heads} must be even when sr_ratio={sr_ratio} > 1: shunted '
            f'attention splits the heads into two equal groups'
        )


@MODELS.register_module()
class ShuntedSelfAttention(BaseAttention):
    """Shunted self-attention: head groups attend to keys/values at different granularities.

    With queries ``Q = x W_q`` split into ``num_heads`` heads of size ``d``:

    - ``sr_ratio = r > 1``: the heads form two groups of ``num_heads / 2``. Group ``g`` aggregates
      the ``H x W`` token map with a conv of kernel = stride = ``r_g`` (``r_1 = r``,
      ``r_2 = r / 2``, floored output size), then LayerNorm and GELU, and its own linear maps the
      ``(H // r_g) * (W // r_g)`` tokens to ``K_g | V_g`` of width ``C / 2``. Local enhancement:
      ``V_g <- V_g + DWConv3x3(V_g)`` on the reduced map, *before* attention. Each head ``h`` of
      group ``g`` computes ``softmax(Q_h K_{g,h}^T * scale) V_{g,h}``; the groups' outputs are
      concatenated (group 1 first).
    - ``sr_ratio = 1``: plain multi-head attention with one ``K | V`` linear on all tokens, and
      the depthwise local conv of ``V`` added to the *output*: ``Attn(Q, K, V) + DWConv3x3(V)``.

    Followed by the output projection. Input and output are tokens ``(B, N, C)`` with
    ``N = H * W`` (``hw_shape``). Any ``H, W >= sr_ratio`` works: the aggregation convs floor.
    The fused path runs ``F.scaled_dot_product_attention`` once per group; the math path
    (``fused_attn=False``) writes the softmax out and serves as the reference in the tests.

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Number of heads; even when ``sr_ratio > 1``.
        sr_ratio (int): Aggregation rate ``r`` of the coarse group; 1 or an even integer.
            Defaults to 1.
        qkv_bias (bool): Bias in the q / kv linears. Defaults to True (as in Shunted-T/S/B).
        qk_scale (float, optional): Overrides ``head_dim ** -0.5``. Defaults to None.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        norm_cfg (dict): Norm after each aggregation conv. Defaults to ``dict(type='LN')``
            (eps 1e-5, as in the official code).
        act_cfg (dict): Activation after that norm. Defaults to ``dict(type='GELU')``.
        fused_attn (bool): Use the fused ``scaled_dot_product_attention`` kernel; False runs
            the plain math path. Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        sr_ratio: int = 1,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        norm_cfg: dict = dict(type='LN'),
        act_cfg: dict = dict(type='GELU'),
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads, qk_scale)
        check_shunted_rate(sr_ratio, num_heads)
        self.sr_ratio = sr_ratio
        self.attn_drop_rate = attn_drop_rate
        self.fused_attn = fused_attn

        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        if sr_ratio > 1:
            half = embed_dims // 2
            rates = (sr_ratio, sr_ratio // 2)
            # Names follow the official code so that conversion is an identity here.
            self.sr1 = nn.Conv2d(embed_dims, embed_dims, rates[0], stride=rates[0])
            self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
            self.sr2 = nn.Conv2d(embed_dims, embed_dims, rates[1], stride=rates[1])
            self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
            self.act = build_activation_layer(act_cfg)
            self.kv1 = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)  # k|v, C/2 each
            self.kv2 = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.local_conv1 = nn.Conv2d(half, half, 3, padding=1, groups=half)
            self.local_conv2 = nn.Conv2d(half, half, 3, padding=1, groups=half)
        else:
            self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
            self.local_conv = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def init_weights(self) -> None:
        """Official initialisation: trunc-normal linears, fan-out normal convs."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=0.02, bias=0.0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.0)
            elif isinstance(m, nn.Conv2d):
                conv_fan_out_init(m)

    @property
    def group_rates(self) -> Tuple[int, ...]:
        """Aggregation rate of each head group (``()`` for plain attention)."""
        return (self.sr_ratio, self.sr_ratio // 2) if self.sr_ratio > 1 else ()

    def _split_heads(self, t: torch.Tensor, heads: int) -> torch.Tensor:
        """(B, n, heads * d) -> (B, heads, n, d)."""
        B, n, _ = t.shape
        return t.reshape(B, n, heads, self.head_dims).transpose(1, 2)

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, record: Optional[tuple] = None
    ) -> torch.Tensor:
        """Softmax attention of (B, h, N, d) queries on (B, h, n, d) keys/values.

        ``record``: ``(title, hw, key_hw)`` under which a recording call keeps the weights.
        """
        if self.fused_attn and not self.recording:
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.0, scale=self.scale
            )
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        if self.recording and record is not None:
            self.emit(AttentionWeights(record[0], attn, record[1], record[2]))
        return self.attn_drop(attn) @ v

    def _local(self, conv: nn.Conv2d, v: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
        """Depthwise conv of (B, n, c) tokens laid out on an ``hw`` map; returns (B, n, c)."""
        return map_to_tokens(conv(tokens_to_map(v, hw)))

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """Apply SSA.

        Args:
            x (Tensor): Tokens ``(B, N, C)``, row-major over ``hw_shape``.
            hw_shape (Sequence[int]): ``(H, W)`` with ``H * W == N``.

        Returns:
            Tensor: ``(B, N, C)``.
        """
        H, W = self.check_input(x, hw_shape)
        B, N, C = x.shape
        if H < self.sr_ratio or W < self.sr_ratio:
            raise ValueError(
                f'feature map {H}x{W} is smaller than the aggregation rate {self.sr_ratio}: '
                f'the coarse group would have no tokens; use a larger input'
            )
        q = self._split_heads(self.q(x), self.num_heads)  # (B, heads, N, d)

        if self.sr_ratio == 1:
            k, v = self.kv(x).chunk(2, dim=-1)  # (B, N, C) each, head-major channels
            out = self._attend(
                q,
                self._split_heads(k, self.num_heads),
                self._split_heads(v, self.num_heads),
                ('SSA (rate 1, all heads)', (H, W), (H, W)),
            )
            out = out.transpose(1, 2).reshape(B, N, C)
            # Local enhancement on the output side for the full-resolution stage.
            out = out + self._local(self.local_conv, v, (H, W))
        else:
            x_map = tokens_to_map(x, (H, W))
            g_heads = self.num_heads // 2
            outs = []
            branches = (
                (self.sr1, self.norm1, self.kv1, self.local_conv1),
                (self.sr2, self.norm2, self.kv2, self.local_conv2),
            )
            for g, (sr, norm, kv_proj, local_conv) in enumerate(branches):
                red = sr(x_map)  # (B, C, H // r_g, W // r_g), floored
                red_hw = tuple(red.shape[2:])
                tokens = self.act(norm(map_to_tokens(red)))  # (B, n_g, C)
                k, v = kv_proj(tokens).chunk(2, dim=-1)  # (B, n_g, C / 2) each
                # Local enhancement on the reduced V, before attention.
                v = v + self._local(local_conv, v, red_hw)
                q_g = q[:, g * g_heads : (g + 1) * g_heads]
                # Only a recording call formats the title: an f-string of the sizes would
                # make torch.compile specialise on them and recompile at every input size.
                record = (
                    (
                        f'Shunted group {g + 1} (rate {self.group_rates[g]}, '
                        f'{red_hw[0]}x{red_hw[1]} keys)',
                        (H, W),
                        red_hw,
                    )
                    if self.recording
                    else None
                )
                out = self._attend(
                    q_g, self._split_heads(k, g_heads), self._split_heads(v, g_heads), record
                )
                outs.append(out.transpose(1, 2).reshape(B, N, C // 2))
            out = torch.cat(outs, dim=-1)
        return self.proj_drop(self.proj(out))
