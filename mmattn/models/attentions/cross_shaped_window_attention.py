"""Cross-shaped window self-attention with LePE, of CSWin Transformer (Dong et al., CVPR 2022).

Paper: "CSWin Transformer: A General Vision Transformer Backbone with Cross-Shaped Windows",
arXiv 2107.00652. Official code: https://github.com/microsoft/CSWin-Transformer
(``models/cswin.py`` for ImageNet, ``segmentation/backbone/cswin_transformer.py`` for the dense
backbone, whose padding for any ``H, W`` this op follows).
"""

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['CSWinAttention', 'stripe_layout']


def stripe_layout(
    hw: Tuple[int, int], stripe: Tuple[int, int]
) -> Tuple[Tuple[int, int], Tuple[int, int, int, int]]:
    """Padded size and ``(top, bottom, left, right)`` zero padding of an ``H x W`` map cut into
    ``sh x sw`` stripes: as the official dense code, the padding is split evenly between both
    sides (the odd pixel at the bottom/right)."""
    (h, w), (sh, sw) = hw, stripe
    ph, pw = (sh - h % sh) % sh, (sw - w % sw) % sw
    return (h + ph, w + pw), (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)


@MODELS.register_module()
class CSWinAttention(BaseAttention):
    r"""Cross-shaped window attention with locally-enhanced positional encoding (LePE).

    The channels (and heads) are split in two halves after the ``qkv`` projection. The first
    half attends inside vertical stripes (``H x s``: full height, ``s = split_size`` columns),
    the second inside horizontal stripes (``s x W``); the two results are concatenated and
    projected. In each stripe, per head,

    .. math::
        O = \mathrm{softmax}(s_q Q K^T) V + \mathrm{DWConv}_{3\times3}(V)

    where the depthwise conv (LePE) runs on ``V`` laid out as the stripe, zero-padded at the
    stripe's borders. With ``split_size=None`` (CSWin's last stage) all heads attend over the
    whole map, and LePE runs on the whole map.

    Any ``H x W``: as the official dense code, ``Q, K, V`` (after the projection) are
    zero-padded to whole stripes, half of the padding on each side, and the output cropped.
    The padded keys are not masked (the official behaviour: they take softmax weight with a
    zero logit and carry a zero value). Where no padding is needed (``H`` and ``W`` multiples of
    ``split_size``) the result is the official ImageNet model's.

    Parameters: ``qkv`` and ``proj`` as the official block's, and ``lepe``, one depthwise conv
    over all ``C`` channels: channels ``[:C/2]`` are the official ``attns.0.get_v``,
    ``[C/2:]`` ``attns.1.get_v`` (in the global mode the whole conv is ``attns.0.get_v``).

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads (both halves together; even unless ``split_size`` is None).
        split_size (int, optional): Stripe width ``s``; None attends globally (the last
            stage). Defaults to 7.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        qk_scale (float, optional): Overrides ``head_dim ** -0.5``. Defaults to None.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        lepe_kernel_size (int): Kernel of the LePE depthwise conv. Defaults to 3.
        fused_attn (bool): Use ``F.scaled_dot_product_attention``; False runs the plain math
            path. Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        split_size: Optional[int] = 7,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        lepe_kernel_size: int = 3,
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads, qk_scale)
        if split_size is not None:
            if int(split_size) < 1:
                raise ValueError(
                    f'split_size must be a positive int or None (global), got {split_size}'
                )
            if num_heads % 2:
                raise ValueError(
                    f'CSWinAttention splits the heads between horizontal and '
                    f'vertical stripes: num_heads must be even, got {num_heads} '
                    '(or use split_size=None for global attention)'
                )
            split_size = int(split_size)
        self.split_size = split_size
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate

        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.lepe = nn.Conv2d(
            embed_dims,
            embed_dims,
            lepe_kernel_size,
            padding=lepe_kernel_size // 2,
            groups=embed_dims,
        )
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def extra_repr(self) -> str:
        return (
            f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
            f'split_size={self.split_size}, fused_attn={self.fused_attn}'
        )

    def branches(self, hw: Tuple[int, int]) -> List[Tuple[int, int, Tuple[int, int], str]]:
        """``(first channel, channels, (stripe h, stripe w), name)`` of each branch."""
        h, w = hw
        c = self.embed_dims
        if self.split_size is None:
            return [(0, c, (h, w), 'global')]
        s = self.split_size
        return [(0, c // 2, (h, s), 'vertical'), (c // 2, c - c // 2, (s, w), 'horizontal')]

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """Forward ``(B, H*W, C)`` tokens of an ``hw_shape`` map; returns the same shape."""
        h, w = self.check_input(x, hw_shape)
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, h, w, 3, c)
        heads = self.num_heads // len(self.branches((h, w)))
        outs = [
            self._branch(qkv[..., c0 : c0 + cb], heads, c0, stripe, name)
            for c0, cb, stripe, name in self.branches((h, w))
        ]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
        return self.proj_drop(self.proj(out.reshape(b, n, c)))

    def _branch(
        self, qkv: torch.Tensor, heads: int, c0: int, stripe: Tuple[int, int], name: str
    ) -> torch.Tensor:
        """One half: ``qkv`` ``(B, H, W, 3, c)`` -> ``(B, H, W, c)``."""
        b, h, w, _, c = qkv.shape
        sh, sw = stripe
        (hp, wp), (top, bottom, left, right) = stripe_layout((h, w), stripe)
        x = qkv.reshape(b, h, w, 3 * c)
        if hp != h or wp != w:
            x = F.pad(x, (0, 0, left, right, top, bottom))
        nh, nw, d, t = hp // sh, wp // sw, c // heads, sh * sw
        # (3, B * nh * nw, heads, sh * sw, d): one row per stripe
        x = x.reshape(b, nh, sh, nw, sw, 3, heads, d).permute(5, 0, 1, 3, 6, 2, 4, 7)
        q, k, v = x.reshape(3, b * nh * nw, heads, t, d).unbind(0)
        # LePE: the depthwise conv on V laid out as its stripe (zeros beyond the stripe)
        v_img = v.transpose(-2, -1).reshape(-1, c, sh, sw)
        conv = self.lepe
        lepe = F.conv2d(
            v_img,
            conv.weight[c0 : c0 + c],
            None if conv.bias is None else conv.bias[c0 : c0 + c],
            padding=conv.padding,
            groups=c,
        )
        lepe = lepe.reshape(-1, heads, d, t).transpose(-2, -1)
        if self.fused_attn and not self.recording:
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.0, scale=self.scale
            )
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            if self.recording:
                self._emit_stripes(attn, b, (h, w), (hp, wp), stripe, (top, left), name)
            out = self.attn_drop(attn) @ v
        out = out + lepe  # (B * nh * nw, heads, t, d)
        out = out.reshape(b, nh, nw, heads, sh, sw, d).permute(0, 1, 4, 2, 5, 3, 6)
        out = out.reshape(b, hp, wp, c)
        if hp != h or wp != w:
            out = out[:, top : top + h, left : left + w]
        return out

    def _emit_stripes(
        self,
        attn: torch.Tensor,
        b: int,
        hw: Tuple[int, int],
        hw_pad: Tuple[int, int],
        stripe: Tuple[int, int],
        offset: Tuple[int, int],
        name: str,
    ) -> None:
        """Record ``attn`` ``(B * nS, heads, t, t)`` as rows of the ``H * W`` queries over the
        padded map (key indices into it; ``meta['offset']``: where the image starts, since the
        padding is split between both sides; ``mmattn/analysis/query_maps.py`` crops there)."""
        (h, w), (hp, wp), (sh, sw) = hw, hw_pad, stripe
        heads, t = attn.shape[1], attn.shape[-1]
        pos = torch.arange(hp * wp, device=attn.device).reshape(hp // sh, sh, wp // sw, sw)
        pos = pos.permute(0, 2, 1, 3).reshape(-1, t)  # (nS, t): padded-map index of each token
        attn = attn.reshape(b, -1, heads, t, t).transpose(1, 2).reshape(b, heads, -1, t)
        rows = attn.new_zeros(b, heads, hp * wp, t)
        rows[:, :, pos.reshape(-1)] = attn
        keys = torch.empty(hp * wp, t, dtype=torch.long, device=attn.device)
        keys[pos.reshape(-1)] = pos.repeat_interleave(t, 0)
        top, left = offset
        valid = (
            (torch.arange(h, device=attn.device)[:, None] + top) * wp
            + torch.arange(w, device=attn.device)
            + left
        ).reshape(-1)
        self.emit(
            AttentionWeights(
                f'CSWin {name} stripes ({sh}x{sw})',
                rows[:, :, valid],
                (h, w),
                (hp, wp),
                key_index=keys[valid],
                valid_hw=(h, w),
                meta=dict(offset=offset),
            )
        )
