"""External attention (Guo et al., "Beyond Self-attention: External Attention using Two Linear
Layers for Visual Tasks", TPAMI 2022, arXiv 2105.02358; official code: MenghaoGuo/EANet).

External attention replaces the N x N affinity of self-attention by the affinity between the N
positions and S learned, dataset-wide memory slots. With a key memory ``M_k`` (S x C) and a value
memory ``M_v`` (C x S)::

    A~ = X M_k^T                      # (N, S) logits
    A^ = softmax over N of A~         # each slot's distribution over the positions
    A  = A^ / sum over S of A^        # L1 over the slots ("double normalisation")
    Y  = A M_v^T                      # (N, C)

Cost is linear in N. This file holds the two forms the paper uses:

- :class:`ExternalAttention`: single head on NCHW maps, the EANet module (1x1 conv, double-
  normalised external attention, 1x1 conv + norm, residual, ReLU);
- :class:`ExternalAttentionBlock`: the same module as an mmcv/mmdet/mmseg ResNet plugin, without
  the trailing activation and with a zero-initialised norm, so it is the identity at init;
- :class:`MultiHeadExternalAttention`: the EAMLP token mixer (channels x4 by a linear, heads x4,
  S = 64 slots per head), following the token contract ``(B, N, C)`` + ``hw_shape``.
"""

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer

from mmattn.registry import MODELS

from .base import AttentionWeights, BaseAttention

__all__ = [
    'ExternalAttention',
    'ExternalAttentionBlock',
    'MultiHeadExternalAttention',
    'double_normalise',
]


def double_normalise(
    logits: torch.Tensor, token_dim: int, slot_dim: int, eps: float = 1e-9
) -> torch.Tensor:
    """Softmax over the tokens, then L1 over the memory slots, computed in fp32.

    NOTE: the normalisers run with autocast off and in fp32: under bf16 the sum over the slots
    of softmax values can be a few ulps wide or underflow, and the division would then amplify
    the rounding error or produce NaN. ``eps`` (the official 1e-9) keeps the division finite when
    every slot of a position is ~0.

    Args:
        logits (Tensor): Token-to-slot logits.
        token_dim (int): The dimension that indexes the N positions (softmax).
        slot_dim (int): The dimension that indexes the S slots (L1 normalisation).
        eps (float): Added to the L1 denominator. Defaults to 1e-9.

    Returns:
        Tensor: The attention map, same shape and dtype as ``logits``.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        # at least fp32: a float64 model keeps its precision
        attn = logits.to(torch.promote_types(logits.dtype, torch.float32)).softmax(dim=token_dim)
        attn = attn / (eps + attn.sum(dim=slot_dim, keepdim=True))
    return attn.to(logits.dtype)


class _SlotMaps:
    """Recording of external attention's weights (token -> memory slot)."""

    def _emit_slots(self, attn: torch.Tensor, hw) -> None:
        """``attn`` (B, heads, N, S): the double-normalised weights of this call."""
        self.emit(
            AttentionWeights(
                'EA composite sum_s A[q,s] A[:,s]',
                attn,
                tuple(hw),
                None,
                then=AttentionWeights('slots', attn.transpose(-2, -1), None, tuple(hw)),
            )
        )


@MODELS.register_module()
class ExternalAttention(_SlotMaps, BaseAttention):
    """Single-head external attention on NCHW maps: the EANet module.

    ``y = act(x + norm(conv_out(M_v . double_normalise(M_k . conv_in(x)))))``, with S memory
    slots shared by all positions and all images (see the module docstring for the math).

    Initial state (``tie_init=True``, the default) matches the official network: 1x1 convs and
    both memories drawn from N(0, 2 / fan_out) with ``M_v = M_k^T``, norm weight 1 and bias 0.
    The official code ties the memories by making ``linear_1.weight`` a transposed view of
    ``linear_0.weight``; its init loop then draws the shared storage last through ``linear_1``,
    so both memories have std ``sqrt(2 / C)``. We copy ``M_k^T`` into ``M_v`` instead of sharing
    storage: the official training script calls ``.cuda()`` on the model, which re-allocates each
    parameter and silently breaks the shared storage, so the official network is *trained* with
    untied memories that merely start tied. A persistent tie would change training (both
    gradients summed into one tensor, weight decay applied twice) and would not survive a device
    or dtype move; it is not offered. ``tie_init=False`` draws ``M_v`` independently.

    Args:
        in_channels (int): Channels of the input and of the output.
        num_slots (int): S, the number of memory slots. Defaults to 64.
        reduction (int): The input 1x1 conv maps C to C / reduction channels, in which the
            memories work; the output conv maps back. 1 is the official module. Defaults to 1.
        tie_init (bool): Start with ``M_v = M_k^T``. Defaults to True.
        eps (float): Added to the L1 denominator. Defaults to 1e-9.
        norm_cfg (dict): Norm after the output 1x1 conv. Defaults to ``dict(type='BN')``
            (the official network uses synchronised BN).
        act_cfg (dict, optional): Activation after the residual sum; None for none.
            Defaults to ``dict(type='ReLU')``.
        zero_init_norm (bool): Initialise the output norm's weight to 0 so that the module is
            ``act(x)`` at init. Defaults to False (the official init).
        init_cfg (dict, optional): MMEngine init config. Defaults to None (official init).
    """

    def __init__(
        self,
        in_channels: int,
        num_slots: int = 64,
        reduction: int = 1,
        tie_init: bool = True,
        eps: float = 1e-9,
        norm_cfg: dict = dict(type='BN'),
        act_cfg: Optional[dict] = dict(type='ReLU'),
        zero_init_norm: bool = False,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels % reduction != 0:
            raise ValueError(
                f'in_channels ({in_channels}) must be divisible by reduction ({reduction})'
            )
        self.in_channels = in_channels
        self.num_slots = num_slots
        self.reduction = reduction
        self.tie_init = tie_init
        self.eps = eps
        self.zero_init_norm = zero_init_norm
        mid = in_channels // reduction
        self.conv_in = nn.Conv2d(in_channels, mid, 1)
        # Memories as 1x1 Conv1d weights: M_k (S, C, 1), M_v (C, S, 1), the official shapes.
        self.mem_k = nn.Conv1d(mid, num_slots, 1, bias=False)
        self.mem_v = nn.Conv1d(num_slots, mid, 1, bias=False)
        self.conv_out = nn.Conv2d(mid, in_channels, 1, bias=False)
        self.norm_name, norm = build_norm_layer(norm_cfg, in_channels)
        self.add_module(self.norm_name, norm)
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else nn.Identity()
        self._init_official()

    @property
    def norm(self) -> nn.Module:
        return getattr(self, self.norm_name)

    @torch.no_grad()
    def _init_official(self) -> None:
        """The official initial state (see the class docstring)."""
        for conv in (self.conv_in, self.conv_out, self.mem_k, self.mem_v):
            # N(0, 2 / (k * k * out_channels)); biases keep PyTorch's default, as officially.
            fan_out = math.prod(conv.kernel_size) * conv.out_channels
            conv.weight.normal_(0, math.sqrt(2.0 / fan_out))
        if self.tie_init:
            # Officially the shared storage is drawn last through linear_1 (fan_out = C).
            self.mem_k.weight.copy_(self.mem_v.weight.permute(1, 0, 2))
        self.norm.weight.fill_(0.0 if self.zero_init_norm else 1.0)
        self.norm.bias.zero_()

    def init_weights(self) -> None:
        """Official init unless an ``init_cfg`` is given.

        A parent's ``init_cfg`` (e.g. ResNet's Kaiming/Constant defaults) may have rewritten our
        parameters before MMEngine calls this; restoring the official state here keeps the
        plugin identity-safe.
        """
        if self.init_cfg is None:
            self._init_official()
            self.is_init = True
        else:
            super().init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): (B, C, H, W). Returns: Tensor: (B, C, H, W)."""
        identity = x
        x = self.conv_in(x)
        B, C, H, W = x.shape  # C = in_channels / reduction
        attn = self.mem_k(x.flatten(2))  # (B, S, N)
        attn = double_normalise(attn, token_dim=2, slot_dim=1, eps=self.eps)
        if self.recording:
            self._emit_slots(attn.transpose(1, 2).unsqueeze(1), (H, W))  # (B, 1, N, S)
        x = self.mem_v(attn).reshape(B, C, H, W)
        x = self.norm(self.conv_out(x))
        return self.act(x + identity)


@MODELS.register_module()
class ExternalAttentionBlock(ExternalAttention):
    """External attention as a ResNet plugin, the identity at init.

    Used through the plugin mechanism of mmcv/mmdet/mmseg ResNets::

        plugins=[dict(cfg=dict(type='mmattn.ExternalAttentionBlock'),
                      stages=(False, True, True, True), position='after_conv3')]

    Unlike the EANet module (``reduction=1``: two C x C convs, 8.4M parameters at C = 2048),
    the plugin works in C / 4 channels by default, as GCNet's context block does: on ResNet-50
    stages 2-4 that adds 10.5M parameters instead of 42M.

    The plugin runs on ``norm3(conv3(x))`` before the bottleneck's residual sum and ReLU, so
    it has no trailing activation of its own (a ReLU there would clip the negative half of the
    residual branch), and its output norm starts at weight 0: at init it returns its input
    exactly, so ImageNet ResNet weights load into a network that computes what the plain ResNet
    computes.

    Args:
        in_channels (int): Channels (given by the ResNet).
        num_slots (int): S. Defaults to 64.
        reduction (int): Channel reduction inside the block. Defaults to 4.
        tie_init (bool): Start with ``M_v = M_k^T``. Defaults to True.
        eps (float): L1 denominator epsilon. Defaults to 1e-9.
        norm_cfg (dict): Output norm. Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Activation after the sum. Defaults to None.
        zero_init_norm (bool): Zero-init the output norm weight. Defaults to True.
        init_cfg (dict, optional): MMEngine init config. Defaults to None.
    """

    _abbr_ = 'ea_block'

    def __init__(
        self,
        in_channels: int,
        num_slots: int = 64,
        reduction: int = 4,
        tie_init: bool = True,
        eps: float = 1e-9,
        norm_cfg: dict = dict(type='BN'),
        act_cfg: Optional[dict] = None,
        zero_init_norm: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(
            in_channels,
            num_slots=num_slots,
            reduction=reduction,
            tie_init=tie_init,
            eps=eps,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            zero_init_norm=zero_init_norm,
            init_cfg=init_cfg,
        )


@MODELS.register_module()
class MultiHeadExternalAttention(_SlotMaps, BaseAttention):
    """Multi-head external attention on tokens: the EAMLP token mixer.

    ``x -> Linear(C, r*C) -> (r*h) heads of C/h channels -> per head: double_normalise(x M_k^T)
    M_v^T -> concat -> Linear(r*C, C)``, with the softmax over the N tokens and the L1 over the
    S slots of each head; M_k, M_v (with biases, as officially) are shared by all heads.
    Official defaults: r = 4, S = 256 / r = 64.

    Args:
        embed_dims (int): C, the token channels.
        num_heads (int): h before expansion; the op runs ``num_heads * expand_ratio`` heads of
            ``embed_dims // num_heads`` channels. Defaults to 8.
        expand_ratio (int): r, the channel (and head) expansion. Defaults to 4.
        num_slots (int): S per head. Defaults to 64.
        attn_drop_rate (float): Dropout on the attention map. Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        eps (float): L1 denominator epsilon. Defaults to 1e-9.
        qkv_bias (bool): Accepted because skeletons pass it to every token mixer; external
            attention has no q/k/v projections, and its memories always carry biases (as
            officially), so it has no effect. Defaults to True.
        qk_scale (float, optional): Accepted for the same reason; there is no logit scale
            (the softmax runs over the tokens), so anything but None is an error.
            Defaults to None.
        init_cfg (dict, optional): MMEngine init config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 8,
        expand_ratio: int = 4,
        num_slots: int = 64,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        eps: float = 1e-9,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if qk_scale is not None:
            raise ValueError('external attention has no logit scale; qk_scale must be None')
        self.init_heads(embed_dims, num_heads)
        self.num_heads = num_heads * expand_ratio
        self.num_slots = num_slots
        self.eps = eps
        self.trans_dims = nn.Linear(embed_dims, embed_dims * expand_ratio)
        self.mem_k = nn.Linear(self.head_dims, num_slots)
        self.mem_v = nn.Linear(num_slots, self.head_dims)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims * expand_ratio, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: torch.Tensor, hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Mix tokens.

        Args:
            x (Tensor): (B, N, C) tokens.
            hw_shape (tuple[int, int], optional): (H, W) with H * W = N; external attention is
                position-free, so it is only checked.

        Returns:
            Tensor: (B, N, C).
        """
        if hw_shape is not None:
            self.check_input(x, hw_shape)
        B, N, _ = x.shape
        x = self.trans_dims(x).reshape(B, N, self.num_heads, self.head_dims).transpose(1, 2)
        attn = self.mem_k(x)  # (B, heads, N, S)
        attn = double_normalise(attn, token_dim=2, slot_dim=3, eps=self.eps)
        if self.recording and hw_shape is not None:
            self._emit_slots(attn, tuple(hw_shape))
        attn = self.attn_drop(attn)
        x = self.mem_v(attn)  # (B, heads, N, head_dims)
        x = x.transpose(1, 2).reshape(B, N, -1)
        return self.proj_drop(self.proj(x))
