"""(Shifted-)window multi-head self-attention of Swin (Liu et al., ICCV 2021).

Paper: "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
arXiv 2103.14030. Official code: https://github.com/microsoft/Swin-Transformer; the padding
for any ``H, W`` follows the dense Swin code (mmdet / LeapLabTHU Agent-Attention downstream).
"""

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_

from mmattn.models.layers.size_cache import SizeKeyedCache
from mmattn.models.layers.tokens import pad_map_to
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = [
    'ShiftWindowMSA',
    'window_partition',
    'window_reverse',
    'shift_window_mask',
    'exportable_shift',
]


def window_partition(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """``(B, H, W, C)`` with ``H, W`` multiples of ``window`` -> ``(B*nW, wh*ww, C)``."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.reshape(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: torch.Tensor, window: Tuple[int, int], h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B*nW, wh*ww, C)`` -> ``(B, H, W, C)``."""
    wh, ww = window
    c = windows.shape[-1]
    x = windows.reshape(-1, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


# (nW, N, N) masks; the large ones of detection-size maps (which change from image to image)
# are rebuilt per call instead of kept
_MASKS = SizeKeyedCache(max_entries=8, max_bytes=4 * 2**20)


def shift_window_mask(
    hw_pad: Tuple[int, int], window: Tuple[int, int], shift: Tuple[int, int], device=None
) -> torch.Tensor:
    """Additive mask ``(nW, N, N)`` keeping each shifted window's pieces apart.

    Tokens from different regions of the rolled map get -100, as in the official code
    (a large finite number rather than -inf, so a fully masked row never yields NaN).
    It depends on the sizes alone and is cached per size (``SizeKeyedCache``); callers must
    not write to it.
    """
    key = (tuple(hw_pad), tuple(window), tuple(shift), torch.device(device or 'cpu'))
    return _MASKS.get(key, lambda: _build_shift_window_mask(hw_pad, window, shift, device))


def _build_shift_window_mask(hw_pad, window, shift, device) -> torch.Tensor:
    h, w = hw_pad
    img = torch.zeros((1, h, w, 1), device=device)
    cnt = 0
    for hs in (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
        for ws in (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    ids = window_partition(img, window).squeeze(-1)  # (nW, N)
    mask = ids.unsqueeze(1) - ids.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def exportable_shift(
    x: torch.Tensor, hw: Tuple[int, int], window: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """The shift step of :class:`ShiftWindowMSA` (``pad_small_map=False``) with the size rule
    computed on tensors, for an exported graph that must follow it at every input size.

    Eager code decides in Python (shift by half a window only when ``min(H, W)`` exceeds the
    smallest window side); ``torch.export`` evaluates that once and keeps no check. Here the
    shift amount is ``half window * (min(H, W) > min(window))`` as a tensor, the roll is an
    index gather, and the region mask is computed from the shift: with a zero shift every
    window holds one region, so the mask is all zeros and adding it changes nothing. Equal to
    the eager roll and :func:`shift_window_mask` (tests/test_models/test_attentions).

    Args:
        x (Tensor): The padded channels-last map ``(B, Hp, Wp, C)``.
        hw (tuple[int, int]): The map's size before padding.
        window (tuple[int, int]): ``(wh, ww)``.

    Returns:
        tuple: The rolled map, the ``(nW, N, N)`` additive mask, and the row and column
        indices that roll the map back.
    """
    (h, w), (wh, ww) = hw, window
    hp, wp = x.shape[1], x.shape[2]
    dev = x.device
    side = torch.minimum(torch.full((), h, device=dev), torch.full((), w, device=dev))
    on = (side > min(wh, ww)).long()

    def wrap(idx, n):
        idx = torch.where(idx >= n, idx - n, idx)
        return torch.where(idx < 0, idx + n, idx)

    def axis(n, win):
        s = on * (win // 2)
        pos = torch.arange(n, device=dev)
        region = (pos >= n - win).long() + (pos >= n - s).long()  # 0, 1, 2 as in the mask
        return wrap(pos + s, n), wrap(pos - s, n), region

    rows, unrows, rid = axis(hp, wh)
    cols, uncols, cid = axis(wp, ww)
    x = x.index_select(1, rows).index_select(2, cols)
    ids = (rid[:, None] * 3 + cid[None, :]).to(torch.float32)
    ids = window_partition(ids[None, :, :, None], window).squeeze(-1)  # (nW, N)
    mask = ids.unsqueeze(1) - ids.unsqueeze(2)
    mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
    return x, mask, (unrows, uncols)


@MODELS.register_module()
class ShiftWindowMSA(BaseAttention):
    r"""Window softmax attention with relative position bias, optionally shifted.

    The ``(B, H*W, C)`` map is padded at the right/bottom to whole windows, rolled by half a
    window when ``shift`` (with the -100 region mask), split into ``wh x ww`` windows where
    :math:`\mathrm{softmax}(s\,QK^T + B_{rel} + M)V` runs, and put back and cropped.
    As in the ImageNet Swin, a map no larger than the window (``min(H, W) <= min(window)``) is
    not shifted unless ``pad_small_map`` (then the dense official behaviour: always shift).

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        window_size (int | tuple[int, int]): Window ``(wh, ww)``. Defaults to 7.
        shift (bool): Shifted windows (SW-MSA), by half a window. Defaults to False.
        pad_small_map (bool): Shift even when the map fits one window. Defaults to False.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        qk_scale (float, optional): Overrides ``head_dim ** -0.5``. Defaults to None.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        proj_drop_rate (float): Output dropout. Defaults to 0.
        fused_attn (bool): Use ``F.scaled_dot_product_attention`` with the bias (+ mask) as
            an additive mask; False runs the plain math path. Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: Union[int, Sequence[int]] = 7,
        shift: bool = False,
        pad_small_map: bool = False,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads, qk_scale)
        wh, ww = (window_size, window_size) if isinstance(window_size, int) else window_size
        self.window_size = (int(wh), int(ww))
        self.shift = shift
        self.pad_small_map = pad_small_map
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate

        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij'))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (N, N, 2)
        index = (rel[..., 0] + wh - 1) * (2 * ww - 1) + (rel[..., 1] + ww - 1)
        # Derived from window_size, so it is not part of the state dict.
        self.register_buffer('relative_position_index', index, persistent=False)

        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self._init_table()

    def _init_table(self) -> None:
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def init_weights(self) -> None:
        """Official init of the relative position bias table (trunc normal, std .02)."""
        super().init_weights()
        if self.init_cfg is None:
            self._init_table()

    def extra_repr(self) -> str:
        return (
            f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
            f'window_size={self.window_size}, shift={self.shift}'
        )

    def relative_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` relative position bias of one window."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """Forward ``(B, H*W, C)`` tokens of an ``hw_shape`` map; returns the same shape."""
        h, w = self.check_input(x, hw_shape)
        b, n, c = x.shape
        wh, ww = self.window_size
        x = x.reshape(b, h, w, c)
        # Whole windows: wh * ceil(h / wh) (a form torch.compile's shape reasoning simplifies
        # quickly, unlike h + (wh - h % wh) % wh).
        # (n + p - 1) // p, not -(-n // p): the ONNX exporter truncates a negative floor division
        hp, wp = (h + wh - 1) // wh * wh, (w + ww - 1) // ww * ww
        x = pad_map_to(x, (hp, wp))
        unroll = None
        if self.shift and not self.pad_small_map and torch.compiler.is_exporting():
            # torch.export evaluates the size rule below once, at the export size, and writes
            # no check into the file: decide it in the graph instead (same values as eager)
            shift = True
            x, mask, unroll = exportable_shift(x, (h, w), (wh, ww))
        else:
            shift = self.shift and (self.pad_small_map or min(h, w) > min(wh, ww))
            mask = None
        if shift and unroll is None:
            sh, sw = wh // 2, ww // 2
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
            mask = shift_window_mask((hp, wp), (wh, ww), (sh, sw), device=x.device)

        win = window_partition(x, (wh, ww))  # (B*nW, N, C)
        bw, nt, _ = win.shape
        heads, d = self.num_heads, c // self.num_heads
        q, k, v = self.qkv(win).reshape(bw, nt, 3, heads, d).permute(2, 0, 3, 1, 4)
        bias = self.relative_bias().unsqueeze(0).to(q.dtype)  # (1, heads, N, N)
        if mask is not None:
            bias = (bias + mask.unsqueeze(1).to(q.dtype)).unsqueeze(0)  # (1, nW, heads, N, N)
            bias = bias.expand(b, -1, -1, -1, -1).reshape(bw, heads, nt, nt)
        if self.fused_attn and not self.recording:
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=bias,
                dropout_p=self.attn_drop_rate if self.training else 0.0,
                scale=self.scale,
            )
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1)
            if self.recording:
                self._emit_windows(attn, b, (h, w), (hp, wp), (sh, sw) if shift else (0, 0))
            out = self.attn_drop(attn) @ v
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(bw, nt, c)))

        x = window_reverse(out, (wh, ww), hp, wp)
        if unroll is not None:
            x = x.index_select(1, unroll[0]).index_select(2, unroll[1])
        elif shift:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        return x[:, :h, :w, :].reshape(b, n, c)

    def _emit_windows(
        self,
        attn: torch.Tensor,
        b: int,
        hw: Tuple[int, int],
        hw_pad: Tuple[int, int],
        shift: Tuple[int, int],
    ) -> None:
        """Record ``attn`` (B*nW, heads, N, N) as rows of the H*W queries over the padded map.

        A window's token ``t`` sits at a position of the rolled, padded map; un-rolling it
        gives its place on the padded map, which is where the key index points.
        """
        (h, w), (hp, wp) = hw, hw_pad
        pos = torch.arange(hp * wp, device=attn.device).reshape(1, hp, wp, 1)
        if shift != (0, 0):
            pos = torch.roll(pos, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        win_pos = window_partition(pos, self.window_size).reshape(-1, attn.shape[-1])  # (nW, N)
        heads, nt = attn.shape[1], attn.shape[-1]
        attn = attn.reshape(b, -1, heads, nt, nt).transpose(1, 2).reshape(b, heads, -1, nt)
        rows = attn.new_zeros(b, heads, hp * wp, nt)
        rows[:, :, win_pos.reshape(-1)] = attn  # queries in padded raster order
        keys = torch.empty(hp * wp, nt, dtype=torch.long, device=attn.device)
        keys[win_pos.reshape(-1)] = win_pos.repeat_interleave(nt, 0)
        valid = (
            torch.arange(h, device=attn.device)[:, None] * wp + torch.arange(w, device=attn.device)
        ).reshape(-1)
        title = (
            f'{"shifted " if shift != (0, 0) else ""}window softmax '
            f'({self.window_size[0]}x{self.window_size[1]})'
        )
        self.emit(
            AttentionWeights(
                title, rows[:, :, valid], (h, w), (hp, wp), key_index=keys[valid], valid_hw=(h, w)
            )
        )
