"""Bi-Level Routing Attention (BRA) and the global attention of BiFormer's last stage.

Reference: Zhu et al., "BiFormer: Vision Transformer with Bi-Level Routing Attention",
CVPR 2023; official code https://github.com/rayleizhu/BiFormer (``ops/bra_legacy.py`` and
``models/_common.py``). This is an independent implementation of the same math.
"""

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.models.layers.tokens import map_to_tokens, pad_map_to, tokens_to_map
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['BiLevelRoutingAttention', 'GlobalAttentionLePE', 'exportable_regions']


def _to_regions(t: torch.Tensor, n_win: int, rh: int, rw: int) -> torch.Tensor:
    """(B, n_win*rh, n_win*rw, C) -> (B, n_win*n_win, rh*rw, C), regions in raster order."""
    b, c = t.shape[0], t.shape[-1]
    t = t.reshape(b, n_win, rh, n_win, rw, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(b, n_win * n_win, rh * rw, c)


def _from_regions(t: torch.Tensor, n_win: int, rh: int, rw: int) -> torch.Tensor:
    """Inverse of :func:`_to_regions`: (B, n_win*n_win, rh*rw, C) -> (B, Hp, Wp, C)."""
    b, c = t.shape[0], t.shape[-1]
    t = t.reshape(b, n_win, n_win, rh, rw, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(b, n_win * rh, n_win * rw, c)


def exportable_regions(
    t: torch.Tensor, n_win: int, rh: int, rw: int, hw: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`_to_regions` for an exported graph, plus the index that undoes it and crops.

    ``torch.export`` traces a reshape that splits a dimension ``n_win * r`` into
    ``(n_win, r)`` through a branch taken when ``r == 1`` (the dimension already has the
    target length) and keeps that as a range on the input size: with ``n_win=16`` and a stage
    map of at most 16 (a 160x160 export at stride 16), ``H, W <= 256``. The graph stays
    general, but the bound is wrong. Here no dimension is split: the tokens are gathered with
    a ``(P, w2)`` index computed arithmetically. Same values as :func:`_to_regions` (pure data
    movement; test in tests/test_models/test_attentions).

    Args:
        t (Tensor): The padded map ``(B, n_win * rh, n_win * rw, C)``.
        n_win (int): Regions per side.
        rh (int): Region height.
        rw (int): Region width.
        hw (tuple[int, int]): The map's size before padding.

    Returns:
        tuple[Tensor, Tensor]: The regions ``(B, P, w2, C)`` and, for each of the ``H * W``
        unpadded tokens in raster order, its row in the regions flattened to
        ``(B, P * w2, C)``.
    """
    h, w = hw
    dev = t.device
    # the region size as 0-d tensors: onnxscript cannot lower `%` by a symbolic Python int
    rh_t, rw_t = (torch.full((), r, dtype=torch.long, device=dev) for r in (rh, rw))

    def divmod_(a, d):
        q = torch.div(a, d, rounding_mode='floor')
        return q, a - q * d

    region = torch.arange(n_win * n_win, device=dev)[:, None]  # (P, 1)
    token = torch.arange(rh * rw, device=dev)[None, :]  # (1, w2)
    (ri, rj), (ta, tb) = divmod_(region, n_win), divmod_(token, rw_t)
    pos = (ri * rh_t + ta) * (n_win * rw_t) + rj * rw_t + tb
    regions = t.flatten(1, 2)[:, pos]  # (B, P, w2, C)
    (yi, ya), (xj, xb) = (
        divmod_(torch.arange(h, device=dev), rh_t),
        divmod_(torch.arange(w, device=dev), rw_t),
    )
    back = (yi[:, None] * n_win + xj[None, :]) * (rh_t * rw_t) + ya[:, None] * rw_t + xb[None, :]
    return regions, back.flatten()


@MODELS.register_module()
class BiLevelRoutingAttention(BaseAttention):
    """Bi-Level Routing Attention (BRA), the token mixer of BiFormer.

    The (padded) map is split into ``n_win x n_win`` regions, so the region size follows the
    input size. With ``q, k, v = qkv(x)`` and ``s = qk_scale or qk_dims ** -0.5`` (the *full*
    ``qk_dims``, not the head dim, as in the released models):

    1. region level: ``A_r = (s * mean_r(q)) @ mean_r(k)^T`` over the ``n_win**2`` regions;
       each region keeps the indices of its ``topk`` largest affinities;
    2. token level: every query token attends, per head, with ``softmax(s * q k^T)`` over the
       union of the tokens of its region's ``topk`` routed regions;
    3. ``out = proj(attention + LePE(v))`` with LePE a ``side_dwconv`` depthwise conv on V.

    Routing carries no gradient by default (the indices are discrete and the released models
    do not weight values by routing scores: ``diff_routing=False, soft_routing=False``).

    Padding (the official ``auto_pad=True`` used by all dense-prediction configs): when H or
    W is not a multiple of ``n_win``, the *input* of this op (the normalised tokens) is
    zero-padded at the bottom/right *before* the qkv projection, so the padded tokens carry
    ``q, k, v = bias`` and take part in the region means, in the attention softmax and in the
    LePE conv; the output is cropped back to H x W. This reproduces the legacy op exactly, so
    the released checkpoints give the same features. Without padding (H, W multiples of
    ``n_win``, as for ImageNet 224 with ``n_win=7``) the op equals the unpadded legacy op.

    Memory: the official op gathers the routed keys/values from a ``(B, P, P, w2, C)``
    expanded view, materialising ``topk`` copies of K/V and, in backward, a ``P``-fold
    (``P = n_win**2``) zero tensor for the gather's gradient. Here (``fused_attn=False``,
    the default on CPU) the keys/values of one routed region are indexed per routing rank inside a
    loop over ``topk`` (at most one extra copy of K/V alive at a time without autograd; the
    indexing's gradient is an index-add into K/V's own shape). ``fused_attn=True`` instead
    gathers the ``topk`` regions once (``topk`` copies, still no ``P``-fold gradient) and
    calls :func:`torch.nn.functional.scaled_dot_product_attention`, which never materialises
    the attention matrix.

    Args:
        embed_dims (int): Channels of the tokens (and of V).
        num_heads (int): Attention heads. Defaults to 8.
        n_win (int): Regions per side of the map. Defaults to 7.
        topk (int): Routed regions per query region; clamped to ``n_win**2``. Defaults to 4.
        qk_dims (int, optional): Channels of Q and K. Defaults to ``embed_dims``.
        qk_scale (float, optional): Overrides ``qk_dims ** -0.5``. Defaults to None.
        side_dwconv (int): Kernel size of the LePE depthwise conv; 0 disables LePE.
            Defaults to 5.
        qkv_bias (bool): Bias of the qkv linear. Defaults to True.
        diff_routing (bool): Let gradients reach the routing through ``soft_routing``
            weights (official option; needs ``soft_routing``). Defaults to False.
        soft_routing (bool): Scale each routed region's keys and values by its softmax
            routing weight (official option, unused by the released models).
            Defaults to False.
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        fused_attn (bool, optional): Gather-once + fused SDPA path instead of the lean loop.
            None (default) picks by device: fused on CUDA, where the lean loop's ``topk``
            small kernels per block cost more than the copies (docs/benchmark.md), lean
            elsewhere, where it is the leaner in memory.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 8,
        n_win: int = 7,
        topk: int = 4,
        qk_dims: Optional[int] = None,
        qk_scale: Optional[float] = None,
        side_dwconv: int = 5,
        qkv_bias: bool = True,
        diff_routing: bool = False,
        soft_routing: bool = False,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        fused_attn: Optional[bool] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        qk_dims = qk_dims or embed_dims
        self.init_heads(embed_dims, num_heads, qk_scale, qk_dims)
        if topk < 1 or n_win < 1:
            raise ValueError(
                f'BRA needs topk >= 1 and n_win >= 1, got {topk}, {n_win}; use '
                'GlobalAttentionLePE for the topk=-2 stages'
            )
        if diff_routing and not soft_routing:
            # NOTE: the official op raises NotImplementedError here ("hard" routing): hard
            # top-k indices alone carry no gradient.
            raise ValueError('diff_routing=True needs soft_routing=True')
        self.n_win = n_win
        self.topk = topk
        self.qk_dims = qk_dims
        self.scale = qk_scale or qk_dims**-0.5  # NOTE: the full qk_dims, as the official code
        self.diff_routing = diff_routing
        self.soft_routing = soft_routing
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate

        # one linear producing q | k | v, then an output linear ('qkvo' in the official code)
        self.qkv = nn.Linear(embed_dims, 2 * qk_dims + embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.lepe = (
            nn.Conv2d(
                embed_dims, embed_dims, side_dwconv, padding=side_dwconv // 2, groups=embed_dims
            )
            if side_dwconv > 0
            else None
        )

    def route(self, q_r: torch.Tensor, k_r: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Region-to-region routing.

        Args:
            q_r (Tensor): Queries by region, (B, P, w2, qk_dims).
            k_r (Tensor): Keys by region, (B, P, w2, qk_dims).

        Returns:
            tuple[Tensor, Tensor]: Routing weights (softmax over the kept logits) and
            indices of the routed regions, both (B, P, topk).
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.diff_routing):
            q_win, k_win = q_r.mean(2), k_r.mean(2)  # (B, P, qk_dims)
            logits = (q_win * self.scale) @ k_win.transpose(-2, -1)  # (B, P, P)
            topk = min(self.topk, logits.shape[-1])
            r_logit, r_idx = torch.topk(logits, k=topk, dim=-1)
            return r_logit.softmax(-1), r_idx

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """Forward.

        Args:
            x (Tensor): Tokens, (B, H*W, C).
            hw_shape (Sequence[int]): (H, W).

        Returns:
            Tensor: (B, H*W, C).
        """
        h, w = self.check_input(x, hw_shape)
        b, n, c = x.shape
        s = self.n_win
        # ceil, the region size follows the input size; positive floor division only: ONNX
        # integer Div truncates, so `-(-h // s)` would be exported wrong
        rh, rw = (h + s - 1) // s, (w + s - 1) // s
        hp, wp = rh * s, rw * s
        x = x.reshape(b, h, w, c)
        # legacy auto_pad: zero-pad the op input before the projection (see docstring)
        x = pad_map_to(x, (hp, wp))
        q, k, v = self.qkv(x).split([self.qk_dims, self.qk_dims, c], dim=-1)  # (B, Hp, Wp, *)

        if self.lepe is not None:
            lepe = self.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, Hp, Wp, C)

        back = None
        if torch.compiler.is_exporting():
            # no reshape of n_win * rh into (n_win, rh): torch.export would bound H and W to
            # the export size's side of rh == 1 (see exportable_regions; same values)
            (q_r, back), (k_r, _), (v_r, _) = (
                exportable_regions(t, s, rh, rw, (h, w)) for t in (q, k, v)
            )
        else:
            q_r, k_r, v_r = (_to_regions(t, s, rh, rw) for t in (q, k, v))  # (B, P, w2, *)
        r_weight, r_idx = self.route(q_r, k_r)

        m, p, w2 = self.num_heads, s * s, rh * rw
        # (B, P, heads, w2, head_dim)
        q_r = q_r.view(b, p, w2, m, -1).transpose(2, 3)
        k_r = k_r.view(b, p, w2, m, -1).transpose(2, 3)
        v_r = v_r.view(b, p, w2, m, -1).transpose(2, 3)
        fused = x.is_cuda if self.fused_attn is None else self.fused_attn
        if fused and not self.recording:
            out = self._attend_fused(q_r, k_r, v_r, r_idx, r_weight)
        else:
            out = self._attend_lean(q_r, k_r, v_r, r_idx, r_weight, ((h, w), (hp, wp)))
        out = out.transpose(2, 3).reshape(b, p, w2, c)
        if back is not None:  # export: back to raster order and cropped, by index
            out = out.flatten(1, 2).index_select(1, back)
            if self.lepe is not None:
                out = out + lepe[:, :h, :w].reshape(b, n, c)
            return self.proj_drop(self.proj(out))
        out = _from_regions(out, s, rh, rw)
        if self.lepe is not None:
            out = out + lepe
        # projection is per token: crop first (the legacy op crops after it; same result)
        out = out[:, :h, :w].reshape(b, n, c)
        return self.proj_drop(self.proj(out))

    def _gather(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Regions ``idx`` (B, P[, k]) of ``t`` (B, P, ...): ``index_select`` over ``B * P``.

        Its gradient is an ``index_add`` into ``t``'s own shape, unlike ``torch.gather`` on the
        official ``(B, P, P, ...)`` expanded view whose gradient is ``P`` times larger.
        NOTE: not ``t[batch, idx]``: advanced indexing's backward (``index_put_`` with
        accumulation) sorts the indices on CUDA, a slow path; ``index_select``'s backward adds
        atomically.
        """
        b, p = t.shape[:2]
        offset = torch.arange(b, device=t.device).view(-1, *([1] * (idx.dim() - 1))) * p
        flat = (idx + offset).reshape(-1)
        rows = t.reshape(b * p, *t.shape[2:]).index_select(0, flat)
        return rows.view(*idx.shape, *t.shape[2:])

    def _attend_lean(self, q, k, v, r_idx, r_weight, grids=None):
        """Softmax attention over routed regions, one routed region per step."""
        topk = r_idx.shape[-1]
        # contiguous once: ``q`` is a transposed view, which every one of the ``topk`` matmuls
        # below would otherwise copy again, in forward and in backward
        q = (q * self.scale).contiguous()
        logits = []
        for j in range(topk):
            k_j = self._gather(k, r_idx[..., j])  # (B, P, heads, w2, d_qk)
            if self.soft_routing:
                k_j = k_j * r_weight[..., j, None, None, None]
            logits.append(q @ k_j.transpose(-2, -1))  # (B, P, heads, w2, w2)
        # (B, P, heads, w2, topk*w2). The logits are the op's largest tensor, so no copy of
        # them is kept alongside: no ``cat`` of a single rank, the list dropped before the
        # softmax, and without autograd the softmax runs in place.
        attn = logits[0] if topk == 1 else torch.cat(logits, dim=-1)
        del logits
        if attn.requires_grad:  # autograd needs the softmax's own output
            attn = attn.softmax(dim=-1)
        else:
            attn = attn.sub_(attn.amax(dim=-1, keepdim=True)).exp_()
            attn = attn.div_(attn.sum(dim=-1, keepdim=True))
        if self.recording:
            self._emit_routed(attn, r_idx, *grids)
        attn = F.dropout(attn, self.attn_drop_rate, self.training)
        out = 0
        # ``split``, not one slice per rank: each slice's backward would write its gradient into
        # a zero tensor of the whole ``attn`` (``topk`` of them); split's backward is one ``cat``
        for j, attn_j in enumerate(attn.split(k.shape[-2], dim=-1)):
            v_j = self._gather(v, r_idx[..., j])  # (B, P, heads, w2, d_v)
            if self.soft_routing:
                v_j = v_j * r_weight[..., j, None, None, None]
            out = out + attn_j @ v_j
        return out  # (B, P, heads, w2, d_v)

    def _emit_routed(self, attn, r_idx, hw, hw_pad) -> None:
        """Record ``attn`` (B, P, heads, w2, topk*w2) as rows of the H*W queries over the keys
        of their routed regions on the padded map."""
        (h, w), (hp, wp) = hw, hw_pad
        s = self.n_win
        rh, rw = hp // s, wp // s
        b, p, heads, w2, kk = attn.shape
        pos = _to_regions(
            torch.arange(hp * wp, device=attn.device).reshape(1, hp, wp, 1), s, rh, rw
        )[0, ..., 0]  # (P, w2): padded index of each region's tokens
        keys = pos[r_idx].reshape(b, p, kk)  # (B, P, topk*w2), rank-major as in ``attn``
        rows = attn.new_zeros(b, heads, hp * wp, kk)
        rows[:, :, pos.reshape(-1)] = attn.permute(0, 2, 1, 3, 4).reshape(b, heads, p * w2, kk)
        key_index = keys.new_zeros(b, hp * wp, kk)
        key_index[:, pos.reshape(-1)] = keys.repeat_interleave(w2, 1)
        valid = (
            torch.arange(h, device=attn.device)[:, None] * wp + torch.arange(w, device=attn.device)
        ).reshape(-1)
        self.emit(
            AttentionWeights(
                f'BRA: top-{r_idx.shape[-1]} routed regions',
                rows[:, :, valid],
                (h, w),
                (hp, wp),
                key_index=key_index[:, valid],
                valid_hw=(h, w),
                meta=dict(r_idx=r_idx.detach(), region_hw=(rh, rw), n_win=s),
            )
        )

    def _attend_fused(self, q, k, v, r_idx, r_weight):
        """Gather the routed regions once, then fused scaled-dot-product attention."""
        b, p, m, w2, _ = q.shape
        k_sel = self._gather(k, r_idx)  # (B, P, topk, heads, w2, d)
        v_sel = self._gather(v, r_idx)
        if self.soft_routing:
            k_sel = k_sel * r_weight[..., None, None, None]
            v_sel = v_sel * r_weight[..., None, None, None]
        # 4-D (B*P, heads, tokens, d): SDPA's fused kernels take only 4-D inputs
        k_sel = k_sel.transpose(2, 3).reshape(b * p, m, -1, k_sel.shape[-1])
        v_sel = v_sel.transpose(2, 3).reshape(b * p, m, -1, v_sel.shape[-1])
        out = F.scaled_dot_product_attention(
            q.reshape(b * p, m, w2, -1),
            k_sel,
            v_sel,
            dropout_p=self.attn_drop_rate if self.training else 0.0,
            scale=self.scale,
        )
        return out.view(b, p, m, w2, -1)


@MODELS.register_module()
class GlobalAttentionLePE(BaseAttention):
    """Global multi-head attention plus LePE: BiFormer's last stage (``topk=-2``).

    ``out = proj(softmax(s * q k^T) v + LePE(x))`` with ``s = qk_scale or head_dim ** -0.5``.
    Two facts of the official ``AttentionLePE`` that the released checkpoints depend on:
    the BiFormer backbone builds it *without* passing the number of heads, so it runs with
    the default ``num_heads=8`` (not ``embed_dims // 32``), and its LePE convolves the op's
    *input* ``x``, not V. The qkv linear has no bias.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads. Defaults to 8 (the official default the backbone relies on).
        qkv_bias (bool): Bias of the qkv linear. Defaults to False.
        qk_scale (float, optional): Overrides ``head_dim ** -0.5``. Defaults to None.
        side_dwconv (int): LePE kernel size; 0 disables it. Defaults to 5.
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0.
        proj_drop_rate (float): Dropout after the projection. Defaults to 0.
        fused_attn (bool): Use ``F.scaled_dot_product_attention``; False runs the plain math
            path. Defaults to True.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        side_dwconv: int = 5,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads, qk_scale)
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.lepe = (
            nn.Conv2d(
                embed_dims, embed_dims, side_dwconv, padding=side_dwconv // 2, groups=embed_dims
            )
            if side_dwconv > 0
            else None
        )

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """Forward.

        Args:
            x (Tensor): Tokens, (B, H*W, C).
            hw_shape (Sequence[int]): (H, W).

        Returns:
            Tensor: (B, H*W, C).
        """
        h, w = self.check_input(x, hw_shape)
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if self.fused_attn and not self.recording:
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.0, scale=self.scale
            )
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, heads, N, N)
            if self.recording:
                self.emit(AttentionWeights('global softmax', attn, (h, w), (h, w)))
            out = F.dropout(attn, self.attn_drop_rate, self.training) @ v
        out = out.transpose(1, 2).reshape(b, n, c)
        if self.lepe is not None:
            out = out + map_to_tokens(self.lepe(tokens_to_map(x, (h, w))))
        return self.proj_drop(self.proj(out))
