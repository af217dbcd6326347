"""Focused Linear Attention (FLatten).

Reference: Han et al., "FLatten Transformer: Vision Transformer using Focused Linear
Attention", ICCV 2023 (arXiv 2308.00442); official code LeapLabTHU/FLatten-Transformer
(``models/flatten_{pvt,pvt_v2,swin}.py``, numerically stable form of May 2024).
"""

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_

from mmattn.models.layers.interpolate import resize_pos_table
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['FocusedLinearAttention', 'focused_kernel']

#: eps added to ReLU(x) so every kernel feature is strictly positive (as the official code).
KERNEL_EPS = 1e-6
#: eps of the per-query normaliser ``1 / (phi(q) . mean_j phi(k_j) + eps)`` (official value).
NORM_EPS = 1e-6


def focused_kernel(x: torch.Tensor, scale: torch.Tensor, focusing_factor: float) -> torch.Tensor:
    """The focused feature map ``phi_p`` applied over the last dimension.

    ``phi(x) = (ReLU(x) + eps) / scale``; ``phi_p(x) = phi(x) ** p * ||phi(x)|| / ||phi(x) ** p||``.

    NOTE: ``phi_p`` is invariant to a positive per-token factor except for the restored norm,
    so the token is divided by its maximum before the power and the maximum multiplied back
    afterwards. The result equals the official formula but ``x ** p`` and the norms can no
    longer overflow (fp32 overflows at ``|x| ~ 1e13`` for ``p = 3`` otherwise).

    Args:
        x (Tensor): Features ``(..., C)``; the norms are taken over all ``C`` channels
            (before the split into heads), as in the official code.
        scale (Tensor): Positive per-channel divisor, broadcastable to ``x``.
        focusing_factor (float): The power ``p``.

    Returns:
        Tensor: ``phi_p(x)``, same shape and dtype as ``x``.
    """
    x = (F.relu(x) + KERNEL_EPS) / scale
    # detached: the result does not depend on ``peak`` (it cancels), so its exact gradient is
    # zero; amax's backward (a tie mask the size of ``x``) would only cost memory and time
    peak = x.detach().amax(dim=-1, keepdim=True)
    x = x / peak
    x_pow = x**focusing_factor
    ratio = x.norm(dim=-1, keepdim=True) / x_pow.norm(dim=-1, keepdim=True)
    return x_pow * (ratio * peak)


@MODELS.register_module()
class FocusedLinearAttention(BaseAttention):
    r"""Focused linear attention with depthwise-conv rank restoration.

    For tokens ``x`` on an ``H x W`` map (``N = H * W``), with ``K`` and ``V`` from ``x`` (or
    from ``x`` spatially reduced by ``sr_ratio``, ``n`` tokens)::

        K   <- K + P                      # learned positional encoding, resized to the map
        Qf, Kf = phi_p(Q), phi_p(K)       # see :func:`focused_kernel` (norms over all C)
        O_h = Qf_h (Kf_h^T V_h / n) / (Qf_h . mean_j Kf_h,j + eps)     per head h
        out = proj(O + DWC(V))            # depthwise k x k conv, one kernel shared by heads

    which equals the row-normalised ``(Qf Kf^T) V`` with row sums ``sum_j Qf_i . Kf_j + n eps``.
    ``Q (K^T V)`` costs ``d dv (N + n)`` per head and ``(Q K^T) V`` costs ``N n (d + dv)``; the
    cheaper order is taken on every call (``compute_order='auto'``), so tiny maps (e.g. the
    7 x 7 last stage at 224 input, ``N < d``) use the quadratic order.

    The kernel map, the normaliser and both matrix products run in fp32 (fp64 for a float64
    model) with autocast off, so bf16/fp16 training cannot overflow or divide by zero; the
    result is cast back.

    The positional encoding has the length of the pretraining map (``pretrain_hw``, divided by
    ``sr_ratio``); for another ``H x W`` it is bilinearly resized as a 2-D grid (see
    :func:`~mmattn.models.layers.interpolate.resize_pos_table`). The official code has no
    resize (fixed-size inputs only).

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads; ``C`` must be divisible by it. Defaults to 8.
        qkv_bias (bool): Bias in the q and kv projections. Defaults to True.
        qk_scale (float, optional): Must be None: the learned ``softplus(scale)`` replaces a
            fixed q-k scale (accepted so skeletons can pass one signature to every op).
            Defaults to None.
        attn_drop_rate (float): Must be 0: linear attention has no attention matrix to drop
            (accepted so skeletons can pass one signature to every op). Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        sr_ratio (int): Spatial reduction of K and V (a strided conv + LayerNorm, official
            PVT option; FLatten-PVT uses 1). Defaults to 1.
        focusing_factor (float): Power ``p`` of the focusing function. Defaults to 3.
        kernel_size (int): Kernel of the depthwise rank-restoration conv. Defaults to 5.
        pretrain_hw (int | Sequence[int], optional): Token map ``(h0, w0)`` the positional
            encoding was learned for (e.g. ``(56, 56)`` in stage 1 at 224 input). None builds no
            positional encoding. Defaults to None.
        pos_interp_mode (str): Mode used to resize the positional encoding.
            Defaults to ``'bilinear'``.
        compute_order (str): ``'auto'``, ``'linear'`` (``Q (K^T V)``) or ``'quadratic'``
            (``(Q K^T) V``). Defaults to ``'auto'``.
        lepe_kernel_size (int): Kernel of a depthwise conv over all channels of ``V`` added to
            the output (CSWin's LePE, the official ``get_v`` of FLatten-CSWin, which has it
            besides the rank-restoration conv); 0 for none. Needs ``sr_ratio=1``.
            Defaults to 0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        sr_ratio: int = 1,
        focusing_factor: float = 3,
        kernel_size: int = 5,
        pretrain_hw: Optional[Union[int, Sequence[int]]] = None,
        pos_interp_mode: str = 'bilinear',
        compute_order: str = 'auto',
        lepe_kernel_size: int = 0,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads)
        if qk_scale is not None:
            raise ValueError(
                'FocusedLinearAttention learns its kernel scale: qk_scale must be '
                f'None, got {qk_scale}'
            )
        if attn_drop_rate:
            raise ValueError(
                'FocusedLinearAttention has no attention matrix: attn_drop_rate '
                f'must be 0, got {attn_drop_rate}'
            )
        if compute_order not in ('auto', 'linear', 'quadratic'):
            raise ValueError(
                f"compute_order must be 'auto', 'linear' or 'quadratic', got {compute_order!r}"
            )
        if lepe_kernel_size and sr_ratio > 1:
            raise ValueError(
                f'lepe_kernel_size needs V on the full map: use sr_ratio=1, got sr_ratio={sr_ratio}'
            )
        self.sr_ratio = sr_ratio
        self.focusing_factor = focusing_factor
        self.compute_order = compute_order
        self.pos_interp_mode = pos_interp_mode

        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims)
        # One depthwise kernel over a head's channels, applied to every head's V.
        self.dwc = nn.Conv2d(
            self.head_dims,
            self.head_dims,
            kernel_size=kernel_size,
            padding=kernel_size // 2,
            groups=self.head_dims,
        )
        self.lepe = (
            nn.Conv2d(
                embed_dims,
                embed_dims,
                lepe_kernel_size,
                padding=lepe_kernel_size // 2,
                groups=embed_dims,
            )
            if lepe_kernel_size
            else None
        )
        # softplus(0) = log 2: the official initial value of the learned kernel scale.
        self.scale = nn.Parameter(torch.zeros(1, 1, embed_dims))

        if pretrain_hw is None:
            self.pos_hw = None
            self.positional_encoding = None
        else:
            h0, w0 = (pretrain_hw, pretrain_hw) if isinstance(pretrain_hw, int) else pretrain_hw
            self.pos_hw = (int(h0) // sr_ratio, int(w0) // sr_ratio)
            self.positional_encoding = nn.Parameter(
                torch.zeros(1, self.pos_hw[0] * self.pos_hw[1], embed_dims)
            )

    def init_weights(self) -> None:
        """Official initialisation: truncated normal (std 0.02) linears, zero scale and P."""
        super().init_weights()
        if self.init_cfg is not None:
            return
        for m in (self.q, self.kv, self.proj):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def use_linear_order(self, n_q: int, n_kv: int) -> bool:
        """Whether ``Q (K^T V)`` is cheaper than ``(Q K^T) V`` (or is forced)."""
        if self.compute_order != 'auto':
            return self.compute_order == 'linear'
        d = dv = self.head_dims
        return n_q * n_kv * (d + dv) > d * dv * (n_q + n_kv)

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """Apply the attention.

        Args:
            x (Tensor): Tokens ``(B, N, C)`` in row-major order of the map.
            hw_shape (Sequence[int]): ``(H, W)`` with ``H * W == N``.

        Returns:
            Tensor: ``(B, N, C)``.
        """
        hw = self.check_input(x, hw_shape)
        if self.sr_ratio > 1:
            x_ = self.sr(tokens_to_map(x, hw))
            kv_hw = tuple(x_.shape[-2:])
            x_ = self.norm(map_to_tokens(x_))
        else:
            x_, kv_hw = x, hw
        k, v = self.kv(x_).chunk(2, dim=-1)  # (B, n, C) each
        out = self._attend(self.q(x), k, v, hw, kv_hw).to(x.dtype)
        out = out + self._restore_rank(v, hw)
        if self.lepe is not None:  # CSWin's LePE on the values (FLatten-CSWin)
            out = out + map_to_tokens(self.lepe(tokens_to_map(v, hw)))
        return self.proj_drop(self.proj(out))

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        hw: Tuple[int, int],
        kv_hw: Tuple[int, int],
    ) -> torch.Tensor:
        """The linear attention of ``(B, N, C)`` queries on ``(B, n, C)`` keys and values, in at
        least fp32 with autocast off (never down-casting a float64 model); ``(B, N, C)``."""
        b, n_q, c = q.shape
        n = k.shape[1]
        heads, d = self.num_heads, self.head_dims
        acc = torch.promote_types(q.dtype, torch.float32)
        with torch.autocast(device_type=q.device.type, enabled=False):
            qf, kf, vf = q.to(acc), k.to(acc), v.to(acc)
            del q, k  # not needed again: the kernel maps below replace them (inference peak)
            if self.positional_encoding is not None:
                kf = kf + resize_pos_table(
                    self.positional_encoding.to(acc), self.pos_hw, kv_hw, self.pos_interp_mode
                )
            scale = F.softplus(self.scale.to(acc))
            qf = focused_kernel(qf, scale, self.focusing_factor)
            kf = focused_kernel(kf, scale, self.focusing_factor)
            qf = qf.reshape(b, n_q, heads, d).transpose(1, 2)  # (B, heads, N, d)
            kf = kf.reshape(b, n, heads, d).transpose(1, 2)  # (B, heads, n, d)
            vf = vf.reshape(b, n, heads, d).transpose(1, 2)  # (B, heads, n, d)
            # Per-query normaliser from the *mean* of K (official May-2024 form), fp32.
            z = 1.0 / (qf @ kf.mean(dim=-2, keepdim=True).transpose(-2, -1) + NORM_EPS)
            # NOTE: z is folded into Q before the products (same value as the official
            # ``(Q @ KV) * z``): Q z is O(1 / |K|), so no intermediate grows like |Q| |K| |V|.
            qf = qf * z
            if self.recording:
                # The weights this call applies to V: (Qf z) Kf^T / n, kept as two factors
                # (an N x n matrix would not fit for large maps).
                self.emit(
                    AttentionWeights(
                        'FLatten focused-kernel weights',
                        qf,
                        tuple(hw),
                        None,
                        then=AttentionWeights(
                            'keys', kf.transpose(-2, -1) * (1.0 / n), None, tuple(kv_hw)
                        ),
                    )
                )
            if self.use_linear_order(n_q, n):
                # n^-1/2 on both factors keeps K^T V at the scale of a mean (official form).
                s = n**-0.5
                out = qf @ ((kf.transpose(-2, -1) * s) @ (vf * s))
            else:
                out = ((qf @ kf.transpose(-2, -1)) * (1.0 / n)) @ vf
            return out.transpose(1, 2).reshape(b, n_q, c)

    def _restore_rank(self, v: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """Rank restoration: the depthwise conv over each head's ``(B, n, C)`` values on the
        ``hw`` map (reduced values first resampled to ``H * W`` tokens); ``(B, N, C)``."""
        b, n, c = v.shape
        heads, d = self.num_heads, self.head_dims
        h, w = hw
        v = v.reshape(b, n, heads, d).transpose(1, 2)  # (B, heads, n, d)
        if n != h * w:
            # Official behaviour with spatial reduction: linear resampling of the flattened
            # reduced token sequence to N tokens.
            v = (
                F.interpolate(
                    v.transpose(-2, -1).reshape(b * heads, d, n), size=h * w, mode='linear'
                )
                .reshape(b, heads, d, h * w)
                .transpose(-2, -1)
            )
        v = v.reshape(b * heads, h, w, d).permute(0, 3, 1, 2)
        return self.dwc(v).reshape(b, c, h * w).transpose(1, 2)

    def extra_repr(self) -> str:
        return (
            f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
            f'sr_ratio={self.sr_ratio}, focusing_factor={self.focusing_factor}, '
            f'pos_hw={self.pos_hw}, compute_order={self.compute_order!r}'
        )
