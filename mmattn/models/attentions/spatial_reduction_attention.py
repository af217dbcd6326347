"""PVT v1 spatial-reduction attention (Wang et al., ICCV 2021), the default op of the PVT skeleton.

Paper: "Pyramid Vision Transformer: A Versatile Backbone for Dense Prediction without
Convolutions", arXiv 2102.12122. Official code: https://github.com/whai362/PVT (the same
module is the ``'B'`` attention of LeapLabTHU/Agent-Attention's ``agent_pvt.py``).
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['SpatialReductionAttention']


@MODELS.register_module()
class SpatialReductionAttention(BaseAttention):
    r"""Softmax attention whose keys/values come from a spatially reduced map.

    :math:`O = \mathrm{softmax}(s\,Q K_r^T) V_r` with :math:`K_r, V_r` projected from
    ``LN(Conv_{r x r, stride r}(X))`` when ``sr_ratio = r > 1`` (else from ``X``), then the output
    projection; :math:`s` = ``head_dim ** -0.5``. The reduction conv floors: an ``H x W`` map
    gives ``floor(H / r) x floor(W / r)`` keys; a map smaller than ``r`` is a ``ValueError``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        sr_ratio (int): Spatial reduction ratio of keys/values. Defaults to 1.
        qkv_bias (bool): Bias in the q/kv projections. Defaults to True.
        qk_scale (float, optional): Overrides ``head_dim ** -0.5``. Defaults to None.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        proj_drop_rate (float): Output dropout. Defaults to 0.
        fused_attn (bool): Use ``F.scaled_dot_product_attention``; False runs the plain math
            path. Defaults to True.
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
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads, qk_scale)
        self.sr_ratio = sr_ratio
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """Forward ``(B, H*W, C)`` tokens of an ``hw_shape`` map; returns the same shape."""
        h, w = self.check_input(x, hw_shape)
        b, n, c = x.shape
        heads, d = self.num_heads, c // self.num_heads
        q = self.q(x).reshape(b, n, heads, d).transpose(1, 2)
        kv_hw = (h, w)
        if self.sr_ratio > 1:
            if h < self.sr_ratio or w < self.sr_ratio:
                raise ValueError(
                    f'SpatialReductionAttention: a {h}x{w} map is smaller than the '
                    f'reduction rate {self.sr_ratio}; use a larger input'
                )
            x = self.sr(tokens_to_map(x, (h, w)))
            kv_hw = (x.shape[2], x.shape[3])
            x = self.norm(map_to_tokens(x))
        k, v = self.kv(x).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)  # (B, heads, M, d)
        if self.fused_attn and not self.recording:
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.0, scale=self.scale
            )
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            if self.recording:
                self.emit(
                    AttentionWeights(
                        f'SRA softmax (rate {self.sr_ratio}, {kv_hw[0]}x{kv_hw[1]} keys)',
                        attn,
                        (h, w),
                        kv_hw,
                    )
                )
            out = self.attn_drop(attn) @ v
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))
