"""PVT v1 style pyramid skeleton with a pluggable attention per block, and Agent-PVT.

The skeleton follows PVT v1 (Wang et al., ICCV 2021, arXiv 2102.12122,
https://github.com/whai362/PVT) as used by Agent-PVT (LeapLabTHU/Agent-Attention,
``agent_transformer/models/agent_pvt.py`` and ``downstream/*/backbones/agent_pvt.py``),
FLatten-PVT and EA-PVT.

Plug-in contract (see ``backbones/base.py`` and ``layers/attn_builder.py``)
-------------------------------------------------------------------------
Each block's token mixer is built from ``attn_cfgs`` (one dict, or one entry per stage, an
entry being a dict or one dict per block). The keyword arguments passed, which the config's
own keys override:

- always: ``embed_dims`` (stage channels);
- only to ops whose ``__init__`` declares them: ``num_heads``, ``qkv_bias``, ``qk_scale``,
  ``attn_drop_rate``, ``proj_drop_rate`` (= the skeleton's ``drop_rate``), ``sr_ratio`` (the
  arch's ``sr_ratios[i]``, e.g. 8/4/2/1), ``pretrain_hw`` (the stage's map at
  ``pretrain_img_size``: 56/28/14/7 for 224, what Agent biases and FLatten positional
  encodings are sized by), ``stage_index``, ``block_index``, ``fused_attn`` (when given), and
  a family's own facts (Agent-PVT: ``agent_num``, ``agent_shape``).

The op is called as ``op(x, hw_shape)`` with ``x`` of shape ``(B, H*W, C)`` (already
layer-normed) and must return the same shape for any ``(H, W)``. The block adds the residual,
drop path and the MLP.

PVT v2 options (Wang et al., "PVT v2: Improved Baselines with Pyramid Vision Transformer",
CVMJ 2022, arXiv 2106.13797; the names of MMDetection's ``PyramidVisionTransformer``):
``patch_kernel_sizes`` (overlapping patch embedding, 7/3/3/3 with strides 4/2/2/2 and padding
``k // 2``), ``use_abs_pos_embed=False``, ``use_conv_ffn`` (a depthwise 3x3 conv between
``fc1`` and the activation) and ``norm_after_stage`` (a LayerNorm after each stage's blocks,
on the main path: the next stage embeds the normalised map).

Input sizes: like the official models, the patch embeddings are strided convs that floor.
Non-overlapping (PVT v1): an ``H x W`` input gives ``floor(H / 4) x floor(W / 4)`` tokens in
stage 1 and each later stage floors ``/ 2`` again; the rows/columns that do not fill a patch
are dropped, and an input smaller than a patch raises a ``ValueError``. Overlapping (PVT v2,
padding ``k // 2``): ``floor((H - 1) / 4) + 1 = ceil(H / 4)`` in stage 1, then ``ceil(/ 2)``.
"""

import itertools
import operator
from typing import Iterable, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_

from mmattn.models.layers.block import BlockSequence, TransformerBlock
from mmattn.models.layers.interpolate import resize_pos_table
from mmattn.models.layers.patch_embed import ConvPatchEmbed
from mmattn.models.layers.tokens import tokens_to_map
from mmattn.registry import MODELS

from .agent_stages import AgentStagesMixin
from .base import BaseBackbone

__all__ = ['PyramidVisionTransformerSkeleton', 'AgentPVT']

_PVT_ARCHS = {
    **dict.fromkeys(
        ['t', 'tiny'],
        dict(
            embed_dims=[64, 128, 320, 512],
            num_heads=[1, 2, 5, 8],
            mlp_ratios=[8, 8, 4, 4],
            depths=[2, 2, 2, 2],
            sr_ratios=[8, 4, 2, 1],
        ),
    ),
    **dict.fromkeys(
        ['s', 'small'],
        dict(
            embed_dims=[64, 128, 320, 512],
            num_heads=[1, 2, 5, 8],
            mlp_ratios=[8, 8, 4, 4],
            depths=[3, 4, 6, 3],
            sr_ratios=[8, 4, 2, 1],
        ),
    ),
    **dict.fromkeys(
        ['m', 'medium'],
        dict(
            embed_dims=[64, 128, 320, 512],
            num_heads=[1, 2, 5, 8],
            mlp_ratios=[8, 8, 4, 4],
            depths=[3, 4, 18, 3],
            sr_ratios=[8, 4, 2, 1],
        ),
    ),
    **dict.fromkeys(
        ['l', 'large'],
        dict(
            embed_dims=[64, 128, 320, 512],
            num_heads=[1, 2, 5, 8],
            mlp_ratios=[8, 8, 4, 4],
            depths=[3, 8, 27, 3],
            sr_ratios=[8, 4, 2, 1],
        ),
    ),
}


class PVTStage(nn.Module):
    """Patch embedding, absolute position embedding (resized to the input; PVT v1 only),
    blocks, and the norm after the blocks (PVT v2 only)."""

    def __init__(
        self,
        patch_embed: ConvPatchEmbed,
        pretrain_hw: Tuple[int, int],
        embed_dims: int,
        blocks: Sequence[TransformerBlock],
        drop_rate: float,
        use_abs_pos_embed: bool = True,
        norm: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.pretrain_hw = pretrain_hw
        if use_abs_pos_embed:
            self.pos_embed = nn.Parameter(
                torch.zeros(1, pretrain_hw[0] * pretrain_hw[1], embed_dims)
            )
            self.pos_drop = nn.Dropout(drop_rate)
        else:
            self.pos_embed = self.pos_drop = None
        self.blocks = BlockSequence(blocks)
        self.norm = norm

    def resized_pos_embed(self, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """``(1, H*W, C)`` position embedding, bilinearly resized from ``pretrain_hw``."""
        return resize_pos_table(self.pos_embed, self.pretrain_hw, hw_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H_in, W_in)`` map -> the stage's ``(B, C, H, W)`` map (a view of the
        tokens, channels-last in memory)."""
        x, hw = self.patch_embed(x)
        if self.pos_embed is not None:
            x = self.pos_drop(x + self.resized_pos_embed(hw))
        x = self.blocks(x, hw)
        if self.norm is not None:
            x = self.norm(x)
        return tokens_to_map(x, hw)


@MODELS.register_module()
class PyramidVisionTransformerSkeleton(BaseBackbone):
    """PVT v1 layout (or v2, with its options) with the attention of each block chosen by
    config.

    See the module docstring for the plug-in contract, the PVT v2 options and the input-size
    policy, and ``backbones/base.py`` for ``arch``, ``out_indices``, ``frozen_stages``,
    ``norm_eval`` and init. Outputs a tuple of NCHW maps (strides 4/8/16/32 for the default
    patch sizes) for ``out_indices``; like the official Agent-PVT dense backbone there are no
    output norms in the v1 layout (``norm_after_stage`` adds v2's). ``frozen_stages=0``
    freezes stage 1's patch (and position) embedding, the stem.

    Args:
        arch (str | dict): ``'t'``/``'tiny'``, ``'s'``, ``'m'``, ``'l'``, or a dict with
            ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``depths``, ``sr_ratios``.
            Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block (see the module docstring).
            Defaults to None: :class:`SpatialReductionAttention`.
        in_channels (int): Input channels. Defaults to 3.
        patch_sizes (sequence[int]): Patch size (conv stride) of each stage's embedding.
            Defaults to (4, 2, 2, 2).
        patch_kernel_sizes (sequence[int], optional): Conv kernel of each stage's embedding;
            larger than the patch size overlaps (PVT v2: (7, 3, 3, 3)). Defaults to None:
            the patch sizes (PVT v1).
        use_abs_pos_embed (bool): Learned absolute position embeddings (PVT v1; PVT v2 has
            none). Defaults to True.
        use_conv_ffn (bool): PVT v2's MLP, ``fc2(act(DWConv3x3(fc1(x))))``. Defaults to False.
        norm_after_stage (bool): PVT v2's LayerNorm (eps ``norm_eps``) after each stage's
            blocks, on the main path. Defaults to False.
        pretrain_img_size (int | tuple[int, int]): Input size of pretraining; sizes the
            position embeddings (and ``pretrain_hw``). Defaults to 224.
        out_indices (sequence[int]): Stages to output. Defaults to (0, 1, 2, 3).
        qkv_bias (bool): Passed to the ops. Defaults to True.
        qk_scale (float, optional): Passed to the ops. Defaults to None.
        drop_rate (float): Dropout after position embedding, in the MLP, and the ops'
            ``proj_drop_rate``. Defaults to 0.
        attn_drop_rate (float): The ops' ``attn_drop_rate``. Defaults to 0.
        drop_path_rate (float): Stochastic depth, increasing linearly over blocks.
            Defaults to 0.1.
        norm_eps (float): Epsilon of the block (and after-stage) LayerNorms.
            Defaults to 1e-6.
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and stages 0..k-1.
            Defaults to -1.
        norm_eval (bool): BatchNorms keep their statistics in training (the skeleton itself
            has only LayerNorms). Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        fused_attn (bool, optional): The ops' fused-kernel switch; None keeps each op's
            default. Defaults to None.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)`` with a
            converted checkpoint. Defaults to None.
    """

    arch_zoo = _PVT_ARCHS
    arch_keys = ('embed_dims', 'num_heads', 'mlp_ratios', 'depths', 'sr_ratios')

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        in_channels: int = 3,
        patch_sizes: Sequence[int] = (4, 2, 2, 2),
        patch_kernel_sizes: Optional[Sequence[int]] = None,
        use_abs_pos_embed: bool = True,
        use_conv_ffn: bool = False,
        norm_after_stage: bool = False,
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-6,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        fused_attn: Optional[bool] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        if patch_kernel_sizes is None:
            patch_kernel_sizes = patch_sizes
        num_stages = len(self.parse_arch(arch)['depths'])
        if not len(patch_sizes) == len(patch_kernel_sizes) == num_stages:
            raise ValueError(
                f'patch_sizes {tuple(patch_sizes)} and patch_kernel_sizes '
                f'{tuple(patch_kernel_sizes)} need one entry per stage '
                f'({num_stages})'
            )
        self.in_channels = in_channels
        self.patch_sizes, self.patch_kernel_sizes = tuple(patch_sizes), tuple(patch_kernel_sizes)
        self.use_abs_pos_embed, self.use_conv_ffn = use_abs_pos_embed, use_conv_ffn
        self.norm_after_stage, self.norm_eps = norm_after_stage, norm_eps
        self.drop_rate, self.drop_path_rate, self.with_cp = drop_rate, drop_path_rate, with_cp
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
        return tuple(itertools.accumulate(self.patch_sizes, operator.mul))

    def build_stages(self, attns) -> None:
        embed_dims, depths = self.arch['embed_dims'], self.arch['depths']
        self.embed_dims = list(embed_dims)
        dpr = torch.linspace(0, self.drop_path_rate, sum(depths)).tolist()
        cur = 0
        self.layers = nn.ModuleList()
        for i in range(self.num_built):
            blocks = [
                TransformerBlock(
                    embed_dims[i],
                    attns[i][j],
                    self.arch['mlp_ratios'][i],
                    self.drop_rate,
                    dpr[cur + j],
                    norm_cfg=dict(type='LN', eps=self.norm_eps),
                    mlp_dw_kernel_size=3 if self.use_conv_ffn else 0,
                    mlp_dw_residual=False,
                    with_cp=self.with_cp,
                )
                for j in range(depths[i])
            ]
            cur += depths[i]
            patch_embed = ConvPatchEmbed(
                self.in_channels if i == 0 else embed_dims[i - 1],
                embed_dims[i],
                self.patch_sizes[i],
                self.patch_kernel_sizes[i],
            )
            norm = nn.LayerNorm(embed_dims[i], eps=self.norm_eps) if self.norm_after_stage else None
            self.layers.append(
                PVTStage(
                    patch_embed,
                    self.pretrain_hw(i),
                    embed_dims[i],
                    blocks,
                    self.drop_rate,
                    self.use_abs_pos_embed,
                    norm,
                )
            )

    def default_attn_cfgs(self):
        return dict(type='SpatialReductionAttention')

    def stage_facts(self, i: int, j: int) -> dict:
        return dict(super().stage_facts(i, j), sr_ratio=self.arch['sr_ratios'][i])

    def stem_parts(self) -> Iterable:
        stem = self.layers[0]
        return [stem.patch_embed] + ([stem.pos_embed] if stem.pos_embed is not None else [])

    def stage_parts(self, i: int) -> Iterable:
        return [self.layers[i]]

    def default_init(self) -> None:
        super().default_init()
        for layer in self.layers:
            if layer.pos_embed is not None:
                trunc_normal_(layer.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward ``(B, C, H, W)`` images; returns the NCHW maps of ``out_indices``."""
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x.contiguous())  # now, not in pack_outputs: see its docstring
        return self.pack_outputs(outs)


@MODELS.register_module()
class AgentPVT(AgentStagesMixin, PyramidVisionTransformerSkeleton):
    """Agent-PVT (Han et al., ECCV 2024, arXiv 2312.08874): PVT v1 with agent attention.

    As the official models, every block uses :class:`AgentAttention` (no spatial reduction);
    agents per stage 9/16/49/49 at pretraining. ``agent_nums`` and ``agent_shapes`` are
    stage facts: they reach every op that declares ``agent_num`` / ``agent_shape`` and are
    ignored by other ops, so ``attn_cfgs`` may swap in any op.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'m'``, ``'l'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None:
            ``dict(type='AgentAttention')``.
        agent_nums (sequence[int]): Pretrained agents per stage (squares).
            Defaults to (9, 16, 49, 49).
        agent_shapes (sequence, optional): Agent grid per stage at run time (the official
            dense ``downstream_agent_shapes``, e.g. 12-16-28-28 as ``[(12, 12), (16, 16),
            (28, 28), (28, 28)]``). Defaults to None: the pretrained grids.
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton`.
    """

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

    def default_attn_cfgs(self):
        return dict(type='AgentAttention')
