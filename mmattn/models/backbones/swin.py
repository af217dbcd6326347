"""Swin skeleton with a pluggable attention per block, and Agent-Swin.

The layout is Swin (Liu et al., ICCV 2021, arXiv 2103.14030) as in the dense code of
LeapLabTHU/Agent-Attention (``downstream/*/backbones/agent_swin.py``): patch embedding,
stages of blocks followed by patch merging, and a LayerNorm on each output.

Plug-in contract (see ``backbones/base.py`` and ``layers/attn_builder.py``)
-------------------------------------------------------------------------
Each block's token mixer is built from ``attn_cfgs`` (one dict, or one entry per stage, an
entry being a dict or one dict per block: e.g. Agent-Swin-B's third stage is two agent blocks
then sixteen window blocks). Keyword arguments given to each op (its config's keys override):

- always: ``embed_dims``;
- only to ops whose ``__init__`` declares them: ``num_heads``, ``qkv_bias``, ``qk_scale``,
  ``attn_drop_rate``, ``proj_drop_rate``, ``shift`` (``block_index % 2 == 1``, Swin's
  alternation; window ops shift by half a window), ``window_size`` (the skeleton's),
  ``pretrain_hw`` (the stage's map size at ``pretrain_img_size``: 56/28/14/7 for 224),
  ``stage_index``, ``block_index``, ``fused_attn`` (when given), and a family's own facts
  (Agent-Swin: ``agent_num``, ``agent_shape``).

The op is called as ``op(x, hw_shape)`` with ``x`` of shape ``(B, H*W, C)`` (layer-normed)
and returns the same shape for any ``(H, W)``.

Input sizes: padded, as the official dense code. The image is zero-padded at the right/bottom
to a multiple of the patch size, and each patch merging pads its input to even sizes, so an
``H x W`` input gives ``ceil(H / 4) x ceil(W / 4)`` tokens in stage 1 and ``ceil(/ 2)`` after
each merging; window ops pad to whole windows and crop back inside.
"""

from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.models.layers.block import BlockSequence, TransformerBlock
from mmattn.models.layers.tokens import map_to_tokens, pad_map_to, tokens_to_map
from mmattn.registry import MODELS

from .agent_stages import AgentStagesMixin
from .base import BaseBackbone

__all__ = ['SwinTransformerSkeleton', 'AgentSwin']


class SwinPatchEmbed(nn.Module):
    """Conv patch embedding; the input is zero-padded right/bottom to the patch size."""

    def __init__(
        self, in_channels: int, embed_dims: int, patch_size: int, patch_norm: bool = True
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims) if patch_norm else None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        p = self.patch_size
        h, w = x.shape[-2:]
        # Padded sizes as p * ceil(size / p) (not size + (p - size % p) % p): the same numbers,
        # but a symbolic form that torch.compile's shape reasoning simplifies quickly.
        # (n + p - 1) // p, not -(-n // p): the ONNX exporter truncates a negative floor division
        x = F.pad(x, (0, (w + p - 1) // p * p - w, 0, (h + p - 1) // p * p - h))
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        x = map_to_tokens(x)
        return (self.norm(x) if self.norm is not None else x), hw


class PatchMerging(nn.Module):
    """2x2 patch merging (padded to even sizes), LayerNorm(4C) and Linear(4C -> 2C)."""

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * embed_dims)
        self.reduction = nn.Linear(4 * embed_dims, 2 * embed_dims, bias=False)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]):
        b, _, c = x.shape
        h, w = hw_shape
        x = pad_map_to(x.reshape(b, h, w, c), ((h + 1) // 2 * 2, (w + 1) // 2 * 2))
        # Official channel order: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        hw = (x.shape[1], x.shape[2])
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c))), hw


class SwinStage(nn.Module):
    """Blocks followed by an optional patch merging."""

    def __init__(
        self, blocks: Sequence[TransformerBlock], downsample: Optional[PatchMerging]
    ) -> None:
        super().__init__()
        self.blocks = BlockSequence(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]):
        """Tokens of an ``hw_shape`` map -> ``(x_down, hw_down, x, hw_shape)``: the input of the
        next stage (the blocks' output when there is no merging) and the blocks' output."""
        x = self.blocks(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        return (*self.downsample(x, hw_shape), x, hw_shape)


@MODELS.register_module()
class SwinTransformerSkeleton(BaseBackbone):
    """Swin layout with the attention of each block chosen by config.

    See the module docstring for the plug-in contract and the input-size policy, and
    ``backbones/base.py`` for ``arch``, ``out_indices``, ``frozen_stages``, ``norm_eval`` and
    init. ``frozen_stages=0`` freezes the patch embedding; stage ``i`` is the patch merging in
    front of it, its blocks and its output norm.

    Args:
        arch (str | dict): ``'t'``/``'tiny'``, ``'s'``, ``'b'``, or a dict with
            ``embed_dims`` (int), ``depths``, ``num_heads``. Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block (see the module docstring).
            Defaults to None: :class:`ShiftWindowMSA`.
        window_size (int | tuple[int, int]): Given to ops with a ``window_size``.
            Defaults to 7.
        in_channels (int): Input channels. Defaults to 3.
        patch_size (int): Patch size. Defaults to 4.
        pretrain_img_size (int | tuple[int, int]): Pretraining input size (``pretrain_hw``).
            Defaults to 224.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        out_indices (sequence[int]): Stages to output (each with its LayerNorm
            ``norm{i}``). Defaults to (0, 1, 2, 3).
        qkv_bias (bool): Passed to the ops. Defaults to True.
        qk_scale (float, optional): Passed to the ops. Defaults to None.
        drop_rate (float): Dropout after patch embedding, in the MLP, and the ops'
            ``proj_drop_rate``. Defaults to 0.
        attn_drop_rate (float): The ops' ``attn_drop_rate``. Defaults to 0.
        drop_path_rate (float): Stochastic depth, linear over blocks. Defaults to 0.1.
        patch_norm (bool): LayerNorm after the patch embedding. Defaults to True.
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and stages 0..k-1.
            Defaults to -1.
        norm_eval (bool): BatchNorms keep their statistics in training (the skeleton itself
            has only LayerNorms). Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        fused_attn (bool, optional): The ops' fused-kernel switch; None keeps each op's
            default. Defaults to None.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)``.
            Defaults to None.
    """

    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])
        ),
        **dict.fromkeys(
            ['s', 'small'], dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24])
        ),
        **dict.fromkeys(
            ['b', 'base'], dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])
        ),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    arch_scalars = ('embed_dims',)

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        window_size: Union[int, Sequence[int]] = 7,
        in_channels: int = 3,
        patch_size: int = 4,
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        mlp_ratio: float = 4.0,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        fused_attn: Optional[bool] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        self.window_size, self.in_channels, self.patch_size = window_size, in_channels, patch_size
        self.mlp_ratio, self.patch_norm, self.with_cp = mlp_ratio, patch_norm, with_cp
        self.drop_rate, self.drop_path_rate = drop_rate, drop_path_rate
        super().__init__(
            arch,
            attn_cfgs,
            out_indices,
            frozen_stages,
            norm_eval,
            pretrain_img_size,
            fused_attn,
            op_knobs=dict(
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                attn_drop_rate=attn_drop_rate,
                proj_drop_rate=drop_rate,
            ),
            init_cfg=init_cfg,
        )

    @property
    def stage_strides(self) -> Tuple[int, ...]:
        return tuple(self.patch_size * 2**i for i in range(self.num_stages))

    @property
    def num_features(self) -> List[int]:
        """Channels of each stage."""
        return [int(self.arch['embed_dims'] * 2**i) for i in range(self.num_stages)]

    def build_stages(self, attns) -> None:
        depths = self.arch['depths']
        self.patch_embed = SwinPatchEmbed(
            self.in_channels, self.num_features[0], self.patch_size, self.patch_norm
        )
        self.drop_after_pos = nn.Dropout(self.drop_rate)
        dpr = torch.linspace(0, self.drop_path_rate, sum(depths)).tolist()
        cur = 0
        self.layers = nn.ModuleList()
        for i in range(self.num_built):
            dims = self.num_features[i]
            blocks = [
                TransformerBlock(
                    dims,
                    attns[i][j],
                    self.mlp_ratio,
                    self.drop_rate,
                    dpr[cur + j],
                    with_cp=self.with_cp,
                )
                for j in range(depths[i])
            ]
            cur += depths[i]
            downsample = PatchMerging(dims) if i < self.num_built - 1 else None
            self.layers.append(SwinStage(blocks, downsample))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

    def default_attn_cfgs(self):
        return dict(type='ShiftWindowMSA')

    def op_dims(self, i: int) -> int:
        return self.num_features[i]

    def stage_facts(self, i: int, j: int) -> dict:
        return dict(super().stage_facts(i, j), shift=j % 2 == 1, window_size=self.window_size)

    def stem_parts(self) -> Iterable:
        return [self.patch_embed]

    def stage_parts(self, i: int) -> Iterable:
        parts = [self.layers[i].blocks]
        if i > 0:
            parts.append(self.layers[i - 1].downsample)
        if i in self.out_indices:
            parts.append(getattr(self, f'norm{i}'))
        return parts

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward ``(B, C, H, W)`` images; returns the normed NCHW maps of ``out_indices``."""
        x, hw = self.patch_embed(x)
        x = self.drop_after_pos(x)
        outs = []
        for i, layer in enumerate(self.layers):
            x, hw, out, out_hw = layer(x, hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(tokens_to_map(out, out_hw).contiguous())  # see pack_outputs
        return self.pack_outputs(outs)


@MODELS.register_module()
class AgentSwin(AgentStagesMixin, SwinTransformerSkeleton):
    """Agent-Swin (Han et al., ECCV 2024, arXiv 2312.08874).

    Agent blocks attend globally over the whole stage map (no window, no shift); the other
    blocks are Swin's shifted-window softmax attention (``window_size``). Official layouts
    (:attr:`official_layouts`): T agent in stages 1-3; S in stages 1-2; B in stages 1-2 and
    the first two blocks of stage 3. Agents per stage 9/16/49/49. ``agent_nums`` and
    ``agent_shapes`` are stage facts: they reach every op that declares ``agent_num`` /
    ``agent_shape`` and are ignored by other ops.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None: the
            official layout of the arch (a custom arch dict gets the tiny layout: agent
            attention in every stage but the last).
        agent_nums (sequence[int]): Pretrained agents per stage. Defaults to (9, 16, 49, 49).
        agent_shapes (sequence, optional): Run-time agent grid per stage (official dense
            ``downstream_agent_shapes``, e.g. 9-12-14-7 as ``[(9, 9), (12, 12), (14, 14),
            (7, 7)]``). Defaults to None: the pretrained grids.
        **kwargs: Arguments of :class:`SwinTransformerSkeleton` (e.g. ``window_size``).
    """

    #: arch name -> number of leading agent blocks per stage (the rest: window attention)
    official_layouts = {'tiny': (2, 2, 6, 0), 'small': (2, 2, 0, 0), 'base': (2, 2, 2, 0)}

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        agent_nums: Sequence[int] = (9, 16, 49, 49),
        agent_shapes: Optional[Sequence] = None,
        **kwargs,
    ) -> None:
        self.set_agents(arch, agent_nums, agent_shapes)
        super().__init__(arch=arch, attn_cfgs=attn_cfgs, **kwargs)

    @classmethod
    def layout_cfgs(cls, num_agent_blocks: Sequence[int], depths: Sequence[int]) -> list:
        """``attn_cfgs`` with the first ``num_agent_blocks[i]`` blocks of stage ``i`` agent
        attention and the rest shifted-window attention."""
        agent, window = dict(type='AgentAttention'), dict(type='ShiftWindowMSA')
        return [
            [agent] * min(k, d) + [window] * max(d - k, 0) for k, d in zip(num_agent_blocks, depths)
        ]

    def default_attn_cfgs(self):
        name = {'t': 'tiny', 's': 'small', 'b': 'base'}.get(self.arch_name, self.arch_name)
        depths = self.arch['depths']
        layout = self.official_layouts.get(name)
        if layout is None:  # custom arch: agent attention in every stage but the last
            layout = [d for d in depths[:-1]] + [0]
        return self.layout_cfgs(layout, depths)
