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

from mmattn.models.layers.interpolate import bilinear_matrix, linear_interp_matrix
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = ['AgentAttention']


def _pair(x: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    x = tuple(int(v) for v in x)
    if len(x) != 2:
        raise ValueError(f'expected an int or a pair, got {x}')
    return x


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
            as additive masks, except on CPU where the biases are added inside the GEMM
            (``torch.baddbmm``; CPU SDPA scans a float mask for fully masked rows on every
            call). False runs the plain math path. Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 pretrain_hw: Union[int, Sequence[int]] = 56,
                 agent_num: int = 49,
                 agent_shape: Optional[Union[int, Sequence[int]]] = None,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 kernel_size: int = 3,
                 with_bias: bool = True,
                 fused_attn: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        side = math.isqrt(int(agent_num))
        if side * side != agent_num:
            raise ValueError(f'agent_num must be a perfect square, got {agent_num}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = qk_scale or self.head_dims**-0.5
        self.pretrain_hw = _pair(pretrain_hw)
        self.agent_num = int(agent_num)
        self.pretrain_grid = (side, side)
        self.agent_shape = _pair(agent_shape) if agent_shape is not None else self.pretrain_grid
        self.with_bias = with_bias
        self.fused_attn = fused_attn
        self.attn_drop_rate = attn_drop_rate

        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.dwc = nn.Conv2d(embed_dims, embed_dims, kernel_size, padding=kernel_size // 2,
                             groups=embed_dims)
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
            for p in (self.an_bias, self.na_bias, self.ah_bias, self.aw_bias, self.ha_bias,
                      self.wa_bias):
                trunc_normal_(p, std=.02)

    def init_weights(self) -> None:
        """Official init of the position biases (trunc normal, std .02)."""
        super().init_weights()
        if self.init_cfg is None:
            self._init_biases()

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'agent_num={self.agent_num}, agent_shape={self.agent_shape}, '
                f'pretrain_hw={self.pretrain_hw}, fused_attn={self.fused_attn}')

    def agent_biases(self, hw_shape: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The two additive biases at feature size ``hw_shape`` and the current agent grid.

        The official definition: each bias is a 7x7 table plus a row table and a column table
        (pretraining size), every table bilinearly resized to ``hw_shape``, then the agent axis
        resized from the pretraining agent grid to ``agent_shape``. All of these resizes are
        linear, so the same numbers come from small matrices instead (float64: equal to
        ``F.interpolate`` of the tables to 1e-15): the agent axis is resized on the tables,
        the 7x7 table becomes ``(A', 49) @ (49, HW)`` and the row and column tables are
        broadcast adds. Nothing of the size of a bias is made except the bias itself, once;
        the interpolation chain this replaces made several and, through the CPU backward of
        ``upsample_bilinear2d``, cost most of the time a bias took.

        Returns:
            tuple[Tensor, Tensor]: ``(heads, A', HW)`` for aggregation and ``(heads, HW, A')``
            for broadcast.
        """
        if torch.jit.is_tracing():
            return self._interpolated_biases(hw_shape)
        h, w = hw_shape
        heads, n = self.num_heads, self.agent_num
        h0, w0 = self.pretrain_hw
        kh, kw = self.an_bias.shape[-2:]
        dtype, device = self.an_bias.dtype, self.an_bias.device
        # agents are the row-major cells of the pooled grid; the official dense code resizes
        # that grid to the downstream agent grid bilinearly: (A', n)
        grid = None if tuple(self.agent_shape) == tuple(self.pretrain_grid) else \
            bilinear_matrix(self.pretrain_grid, self.agent_shape, dtype, device)
        cells = bilinear_matrix((kh, kw), (h, w), dtype, device)  # (HW, kh * kw)
        rows = linear_interp_matrix(h0, h, dtype, device)  # (H, h0)
        cols = linear_interp_matrix(w0, w, dtype, device)  # (W, w0)

        def expand(table: torch.Tensor, row: torch.Tensor, col: torch.Tensor,
                   agents_last: bool) -> torch.Tensor:
            """(heads, n, kh*kw), (heads, n, h0), (heads, n, w0) -> (heads, A', H*W), or
            (heads, H*W, A') with the agents as the unit-stride axis (``agents_last``)."""
            if grid is not None:  # the agent axis first, while the tables are small
                table, row, col = (grid @ t for t in (table, row, col))
            a = table.shape[1]
            row, col = row @ rows.t(), col @ cols.t()  # (heads, A', H), (heads, A', W)
            if agents_last:
                # (HW, heads * A'): the layout the (B*heads, HW, A') logits it is added to
                # have; a transposed bias made baddbmm's copy of it 3x slower
                bias = cells @ table.permute(2, 0, 1).reshape(kh * kw, heads * a)
                grid_view = (h, w, heads, a)
                row, col = row.permute(2, 0, 1)[:, None], col.permute(2, 0, 1)[None]
            else:
                bias = table @ cells.t()  # (heads, A', HW)
                grid_view = (heads, a, h, w)
                row, col = row[..., None], col[..., None, :]
            if bias.requires_grad:
                # out of place: in-place adds on a view make autograd clone the whole bias
                # in backward (CopySlices), twice per bias
                bias = bias.view(grid_view) + row + col
            else:
                bias.view(grid_view).add_(row).add_(col)  # the only bias-sized tensor
            if agents_last:
                return bias.reshape(h * w, heads, a).permute(1, 0, 2)
            return bias.reshape(heads, a, h * w)

        pos_bias = expand(self.an_bias.reshape(heads, n, kh * kw),
                          self.ah_bias.reshape(heads, n, h0), self.aw_bias.reshape(heads, n, w0),
                          agents_last=False)
        agent_bias = expand(self.na_bias.reshape(heads, n, kh * kw),
                            self.ha_bias.reshape(heads, h0, n).transpose(1, 2),
                            self.wa_bias.reshape(heads, w0, n).transpose(1, 2), agents_last=True)
        return pos_bias, agent_bias

    def _interpolated_biases(self, hw_shape: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`agent_biases` as the official code computes them (``F.interpolate`` of each
        table, then of the agent grid). Used only while tracing, i.e. by the FLOP counter: the
        papers' FLOPs count these resizes (as elementwise work), not the matrix products that
        give the same numbers, so counts stay comparable with the published ones."""
        heads, n = self.num_heads, self.agent_num
        h0, w0 = self.pretrain_hw
        size = tuple(hw_shape)

        def resize(t):
            return t if tuple(t.shape[-2:]) == size else F.interpolate(
                t, size=size, mode='bilinear', align_corners=False)

        def agents(t):  # (heads, n, H, W) -> (heads, A', HW)
            if tuple(self.agent_shape) == tuple(self.pretrain_grid):
                return t.reshape(heads, n, -1)
            t = t.reshape(heads, *self.pretrain_grid, -1).permute(0, 3, 1, 2)
            t = F.interpolate(t, size=tuple(self.agent_shape), mode='bilinear',
                              align_corners=False)
            return t.flatten(2).transpose(1, 2)

        an = resize(self.an_bias) + resize((self.ah_bias + self.aw_bias).reshape(heads, n, h0, w0))
        na = resize(self.na_bias) + resize(
            (self.ha_bias + self.wa_bias).reshape(heads, h0, w0, n).permute(0, 3, 1, 2))
        return agents(an), agents(na).transpose(1, 2)

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

        pos_bias = agent_bias = None
        if self.with_bias:
            pos_bias, agent_bias = (t.to(q.dtype) for t in self.agent_biases((h, w)))
        if self.fused_attn and not self.recording and q.device.type == 'cpu':
            scale = self.scale
            bh = b * heads
            a = agents.shape[-2]
            agents3 = agents.reshape(bh, a, d)
            logits = agents3 @ k.reshape(bh, n, d).transpose(1, 2) * scale if pos_bias is None \
                else torch.baddbmm(pos_bias.expand(b, -1, -1, -1).reshape(bh, a, n), agents3,
                                   k.reshape(bh, n, d).transpose(1, 2), alpha=scale)
            agent_v = self.attn_drop(logits.softmax(-1)) @ v.reshape(bh, n, d)  # (BH, A', d)
            logits = q.reshape(bh, n, d) @ agents3.transpose(1, 2) * scale if agent_bias is None \
                else torch.baddbmm(agent_bias.expand(b, -1, -1, -1).reshape(bh, n, a),
                                   q.reshape(bh, n, d), agents3.transpose(1, 2), alpha=scale)
            out = (self.attn_drop(logits.softmax(-1)) @ agent_v).view(b, heads, n, d)
        elif self.fused_attn and not self.recording:
            p = self.attn_drop_rate if self.training else 0.
            agent_v = F.scaled_dot_product_attention(
                agents, k, v, attn_mask=pos_bias, dropout_p=p, scale=self.scale)
            out = F.scaled_dot_product_attention(
                q, agents, agent_v, attn_mask=agent_bias, dropout_p=p, scale=self.scale)
        else:
            agent_attn = self._softmax(agents, k, pos_bias, self.scale)  # (B, heads, A', N)
            agent_v = self.attn_drop(agent_attn) @ v
            q_attn = self._softmax(q, agents, agent_bias, self.scale)  # (B, heads, N, A')
            out = self.attn_drop(q_attn) @ agent_v
            if self.recording:
                grid = tuple(self.agent_shape)
                self.emit(AttentionWeights(
                    'agent composite (q->agents->keys)', q_attn, (h, w), grid,
                    then=AttentionWeights('agent aggregation', agent_attn, grid, (h, w))))

        out = out.transpose(1, 2).reshape(b, n, c)
        # Diversity restoration: depthwise conv on V laid out as an image.
        v_img = tokens_to_map(v.transpose(1, 2).reshape(b, n, c), (h, w))
        out = out + map_to_tokens(self.dwc(v_img))
        return self.proj_drop(self.proj(out))

    def query_maps(self, records, query):
        """The composite map (query -> agents -> keys), with the agents drawn at the centres
        of their pooling cells, sized by the query's weight on each."""
        maps = []
        for rec in records:
            (omap, ) = super().query_maps([rec], query)
            h, w = rec.query_hw
            gh, gw = rec.key_hw
            weights = rec.weights[0, :, query[0] * w + query[1]].mean(0)  # (A',)
            for a in range(gh * gw):
                i, j = divmod(a, gw)
                # centre of adaptive pooling cell (i, j) in token coordinates
                r0, r1 = math.floor(i * h / gh), math.ceil((i + 1) * h / gh)
                c0, c1 = math.floor(j * w / gw), math.ceil((j + 1) * w / gw)
                omap.points.append(((r0 + r1) / 2 - .5, (c0 + c1) / 2 - .5, float(weights[a])))
            maps.append(omap)
        return maps
