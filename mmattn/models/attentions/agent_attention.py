"""Agent Attention (Han et al., ECCV 2024).

Paper: "Agent Attention: On the Integration of Softmax and Linear Attention",
arXiv 2312.08874. Official code: https://github.com/LeapLabTHU/Agent-Attention
(``agent_transformer/models/agent_{pvt,swin}.py`` for ImageNet,
``downstream/{detection,segmentation}`` for the dense backbones).
"""

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from mmengine.utils import to_2tuple

from mmattn.models.layers.concat_matmul import concat_matmul
from mmattn.models.layers.interpolate import bilinear_matrix, linear_interp_matrix
from mmattn.models.layers.size_cache import SizeKeyedCache
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['AgentAttention']

# The bases are (HW, K) tables, K = 49 + h0 + w0. Every block of a stage shares its stage's
# basis, so a fixed-size run keeps one per stage; the largest (detection sizes, which change
# per image) are rebuilt once per forward instead of kept.
_BASES = SizeKeyedCache(max_entries=8, max_bytes=64 << 20)


def _bias_basis(
    table_hw: Tuple[int, int],
    pretrain_hw: Tuple[int, int],
    hw: Tuple[int, int],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``(H*W, kh*kw + h0 + w0)``: per token (row-major), the bilinear weights of the
    ``kh x kw`` table, then those of the row table at its row, then of the column table at its
    column (``AgentAttention.bias_factors``)."""
    (h, w), (h0, w0) = hw, pretrain_hw
    cells = bilinear_matrix(table_hw, hw, dtype, device)  # (HW, kh * kw)
    rows = linear_interp_matrix(h0, h, dtype, device)  # (H, h0)
    cols = linear_interp_matrix(w0, w, dtype, device)  # (W, w0)
    return torch.cat(
        [
            cells,
            rows[:, None].expand(h, w, h0).reshape(h * w, h0),
            cols[None].expand(h, w, w0).reshape(h * w, w0),
        ],
        1,
    )


@MODELS.register_module()
class AgentAttention(BaseAttention):
    r"""Agent attention over a whole feature map.

    With queries :math:`Q`, keys :math:`K`, values :math:`V` (per head, :math:`N = HW`) and
    agent tokens :math:`A = \mathrm{AvgPool}_{g_h \times g_w}(Q)` (:math:`n = g_h g_w` agents):

    .. math::
        V_A = \mathrm{softmax}(s A K^T + B_1) V \quad \text{(agent aggregation)}

        O = \mathrm{softmax}(s Q A^T + B_2) V_A + \mathrm{DWC}(V) \quad
        \text{(agent broadcast + diversity restoration)}

    followed by the output projection, with :math:`s` = ``head_dim ** -0.5``.
    :math:`B_1` (agents x tokens) is ``an_bias`` (a 7x7 table per agent) plus the factorised
    ``ah_bias + aw_bias``; :math:`B_2` (tokens x agents) is ``na_bias`` plus ``ha_bias +
    wa_bias``. The factorised biases are sized for the pretraining feature map
    ``pretrain_hw``. At any other ``H x W`` every table is resized bilinearly to ``H x W``, and
    when the agent grid differs from the pretrained ``sqrt(agent_num)`` square (the dense
    ``downstream_agent_shapes``), the agent axis of the biases is resized bilinearly too — both
    as in the official dense code. At ``pretrain_hw`` with the pretrained grid nothing is
    resized, which equals the official ImageNet model.

    Args:
        embed_dims (int): Channels of the tokens.
        num_heads (int): Attention heads.
        pretrain_hw (int | tuple[int, int]): The feature-map size the factorised biases are
            sized for (ImageNet 224 input: 56/28/14/7 for the four stages). Defaults to 56.
        agent_num (int): Agents at pretraining; must be a square (9, 16, 49, ...).
            Defaults to 49.
        agent_shape (int | tuple[int, int], optional): Agent grid used at run time (the
            official ``downstream_agent_shape``). Defaults to None, i.e. the pretrained
            ``sqrt(agent_num)`` square.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        qk_scale (float, optional): Overrides ``head_dim ** -0.5``. Defaults to None.
        attn_drop_rate (float): Dropout on both attention maps. Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        kernel_size (int): Kernel of the depthwise conv on V. Defaults to 3.
        with_bias (bool): Use the position biases (the paper's default). Defaults to True.
        fused_attn (bool): The fast path: ``F.scaled_dot_product_attention`` with the biases
            as additive masks, except on CPU where the biases are folded into the logits' GEMMs
            (:meth:`bias_factors`, :func:`concat_matmul`; CPU SDPA scans a float mask for fully
            masked rows on every call). False runs the plain math path. Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        pretrain_hw: Union[int, Sequence[int]] = 56,
        agent_num: int = 49,
        agent_shape: Optional[Union[int, Sequence[int]]] = None,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        kernel_size: int = 3,
        with_bias: bool = True,
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_heads(embed_dims, num_heads, qk_scale)
        side = math.isqrt(int(agent_num))
        if side * side != agent_num:
            raise ValueError(f'agent_num must be a perfect square, got {agent_num}')
        self.pretrain_hw = to_2tuple(pretrain_hw)
        self.agent_num = int(agent_num)
        self.pretrain_grid = (side, side)
        self.agent_shape = to_2tuple(agent_shape) if agent_shape is not None else self.pretrain_grid
        self.with_bias = with_bias
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate

        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.dwc = nn.Conv2d(
            embed_dims, embed_dims, kernel_size, padding=kernel_size // 2, groups=embed_dims
        )
        if with_bias:
            h0, w0 = self.pretrain_hw
            heads, n = num_heads, self.agent_num
            # Official shapes, so checkpoints load without reshaping.
            self.an_bias = nn.Parameter(torch.zeros(heads, n, 7, 7))
            self.na_bias = nn.Parameter(torch.zeros(heads, n, 7, 7))
            self.ah_bias = nn.Parameter(torch.zeros(1, heads, n, h0, 1))
            self.aw_bias = nn.Parameter(torch.zeros(1, heads, n, 1, w0))
            self.ha_bias = nn.Parameter(torch.zeros(1, heads, h0, 1, n))
            self.wa_bias = nn.Parameter(torch.zeros(1, heads, 1, w0, n))
        self._init_biases()

    def _init_biases(self) -> None:
        if self.with_bias:
            for p in (
                self.an_bias,
                self.na_bias,
                self.ah_bias,
                self.aw_bias,
                self.ha_bias,
                self.wa_bias,
            ):
                trunc_normal_(p, std=0.02)

    def init_weights(self) -> None:
        """Official init of the position biases (trunc normal, std .02)."""
        super().init_weights()
        if self.init_cfg is None:
            self._init_biases()

    def extra_repr(self) -> str:
        return (
            f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
            f'agent_num={self.agent_num}, agent_shape={self.agent_shape}, '
            f'pretrain_hw={self.pretrain_hw}, fused_attn={self.fused_attn}'
        )

    def bias_factors(
        self, hw_shape: Tuple[int, int]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The two position biases at feature size ``hw_shape`` as low-rank products.

        The official definition: each bias is a 7x7 table plus a row table and a column table
        (pretraining size), every table bilinearly resized to ``hw_shape``, then the agent axis
        resized from the pretraining agent grid to ``agent_shape``. All of these resizes are
        linear, so each bias is a learned factor times a constant basis (float64: equal to
        ``F.interpolate`` of the tables to 1e-15): with ``K = kh * kw + h0 + w0`` columns,
        ``B_1 = P_1 @ M^T`` and ``B_2 = M @ P_2^T``, where ``P = [table | rows | cols]`` (agent
        axis resized, ``(heads, A', K)``) and ``M = [cells | row weights | column weights]``
        (``(HW, K)``: the bilinear weights of the 7x7 table, of the row table at each token's row
        and of the column table at its column; sizes only, cached). The biases need never exist:
        the CPU path folds them into the logits' GEMM (:func:`concat_matmul`).

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``P_1`` and ``P_2`` ``(heads, A', K)``, ``M``
            ``(HW, K)``.
        """
        h, w = hw_shape
        heads, n = self.num_heads, self.agent_num
        h0, w0 = self.pretrain_hw
        kh, kw = self.an_bias.shape[-2:]
        dtype, device = self.an_bias.dtype, self.an_bias.device
        basis = _BASES.get(
            (kh, kw, h0, w0, h, w, dtype, torch.device(device)),
            lambda: _bias_basis((kh, kw), (h0, w0), (h, w), dtype, device),
        )
        p_pos = torch.cat(
            [
                self.an_bias.reshape(heads, n, kh * kw),
                self.ah_bias.reshape(heads, n, h0),
                self.aw_bias.reshape(heads, n, w0),
            ],
            -1,
        )
        p_agent = torch.cat(
            [
                self.na_bias.reshape(heads, n, kh * kw),
                self.ha_bias.reshape(heads, h0, n).transpose(1, 2),
                self.wa_bias.reshape(heads, w0, n).transpose(1, 2),
            ],
            -1,
        )
        if tuple(self.agent_shape) != tuple(self.pretrain_grid):
            # agents are the row-major cells of the pooled grid; the official dense code
            # resizes that grid to the downstream agent grid bilinearly: (A', n) on the factors
            grid = bilinear_matrix(self.pretrain_grid, self.agent_shape, dtype, device)
            p_pos, p_agent = grid @ p_pos, grid @ p_agent
        return p_pos, p_agent, basis

    def agent_biases(self, hw_shape: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The two additive biases at feature size ``hw_shape`` (see :meth:`bias_factors`).

        Returns:
            tuple[Tensor, Tensor]: ``(heads, A', HW)`` for aggregation and ``(heads, HW, A')``
            for broadcast.
        """
        p_pos, p_agent, basis = self.bias_factors(hw_shape)
        return p_pos @ basis.t(), basis @ p_agent.transpose(1, 2)

    @staticmethod
    def _softmax(q, k, bias, scale):
        """Math path weights: softmax(scale * q k^T + bias)."""
        attn = (q * scale) @ k.transpose(-2, -1)
        if bias is not None:
            attn = attn + bias
        return attn.softmax(dim=-1)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """Forward.

        Args:
            x (Tensor): Tokens ``(B, H*W, C)`` in row-major order.
            hw_shape (tuple[int, int]): ``(H, W)``.

        Returns:
            Tensor: ``(B, H*W, C)``.
        """
        h, w = self.check_input(x, hw_shape)
        b, n, c = x.shape
        heads, d = self.num_heads, self.head_dims
        q, k, v = self.qkv(x).reshape(b, n, 3, c).unbind(2)  # each (B, N, C)
        agents = F.adaptive_avg_pool2d(tokens_to_map(q, (h, w)), self.agent_shape)
        agents = agents.reshape(b, heads, d, -1).transpose(-2, -1)  # (B, heads, A', d)
        q = q.reshape(b, n, heads, d).transpose(1, 2)  # (B, heads, N, d)
        k = k.reshape(b, n, heads, d).transpose(1, 2)
        v = v.reshape(b, n, heads, d).transpose(1, 2)

        if self.recording or not self.fused_attn:
            out = self._math_attention(q, k, v, agents, (h, w))
        elif q.device.type == 'cpu':
            out = self._folded_attention(q, k, v, agents, (h, w))
        else:
            out = self._sdpa_attention(q, k, v, agents, (h, w))

        out = out.transpose(1, 2).reshape(b, n, c)
        # Diversity restoration: depthwise conv on V laid out as an image.
        v_img = tokens_to_map(v.transpose(1, 2).reshape(b, n, c), (h, w))
        out = out + map_to_tokens(self.dwc(v_img))
        return self.proj_drop(self.proj(out))

    def _math_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        agents: torch.Tensor,
        hw_shape: Tuple[int, int],
    ) -> torch.Tensor:
        """The reference: both softmaxes written out with the biases of :meth:`agent_biases`
        (and the weights handed to a recording tool). ``q, k, v``: ``(B, heads, N, d)``;
        ``agents``: ``(B, heads, A', d)``; returns ``(B, heads, N, d)``."""
        pos_bias = agent_bias = None
        if self.with_bias:
            pos_bias, agent_bias = (t.to(q.dtype) for t in self.agent_biases(hw_shape))
        agent_attn = self._softmax(agents, k, pos_bias, self.scale)  # (B, heads, A', N)
        agent_v = self.attn_drop(agent_attn) @ v
        q_attn = self._softmax(q, agents, agent_bias, self.scale)  # (B, heads, N, A')
        if self.recording:
            grid = tuple(self.agent_shape)
            self.emit(
                AttentionWeights(
                    'agent composite (q->agents->keys)',
                    q_attn,
                    tuple(hw_shape),
                    grid,
                    then=AttentionWeights('agent aggregation', agent_attn, grid, tuple(hw_shape)),
                )
            )
        return self.attn_drop(q_attn) @ agent_v

    def _sdpa_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        agents: torch.Tensor,
        hw_shape: Tuple[int, int],
    ) -> torch.Tensor:
        """The GPU path: :meth:`_math_attention` as two fused SDPA calls, the biases as
        additive masks."""
        pos_bias = agent_bias = None
        if self.with_bias:
            pos_bias, agent_bias = (t.to(q.dtype) for t in self.agent_biases(hw_shape))
        p = self.attn_drop_rate if self.training else 0.0
        agent_v = F.scaled_dot_product_attention(
            agents, k, v, attn_mask=pos_bias, dropout_p=p, scale=self.scale
        )
        return F.scaled_dot_product_attention(
            q, agents, agent_v, attn_mask=agent_bias, dropout_p=p, scale=self.scale
        )

    def _folded_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        agents: torch.Tensor,
        hw_shape: Tuple[int, int],
    ) -> torch.Tensor:
        """The CPU path: :meth:`_math_attention` with the biases folded into the logits' GEMMs
        (:func:`concat_matmul` of the :meth:`bias_factors`), so no bias-sized tensor is made,
        and no float mask for CPU SDPA to scan for fully masked rows on every call.
        ``q, k, v``: ``(B, heads, N, d)``; ``agents``: ``(B, heads, A', d)``."""
        b, heads, n, _ = q.shape
        agents = agents * self.scale
        if self.with_bias:
            p_pos, p_agent, basis = (t.to(q.dtype) for t in self.bias_factors(hw_shape))
            basis = basis.expand(b, heads, n, basis.shape[-1])
            logits = concat_matmul(agents, k, p_pos.expand(b, -1, -1, -1), basis)
        else:
            logits = agents @ k.transpose(-2, -1)
        agent_v = self.attn_drop(logits.softmax(-1)) @ v  # (B, heads, A', d)
        logits = (
            concat_matmul(q, agents, basis, p_agent.expand(b, -1, -1, -1))
            if self.with_bias
            else q @ agents.transpose(-2, -1)
        )
        return self.attn_drop(logits.softmax(-1)) @ agent_v
