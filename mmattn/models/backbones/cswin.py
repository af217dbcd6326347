"""CSWin skeleton with a pluggable attention per block, and Agent-CSWin / FLatten-CSWin.

The layout is CSWin Transformer's (Dong et al., CVPR 2022, arXiv 2107.00652; official code
microsoft/CSWin-Transformer, ``models/cswin.py``, dense backbone
``segmentation/backbone/cswin_transformer.py``): a 7x7 stride-4 conv stem + LayerNorm, four
stages of pre-norm blocks, a 3x3 stride-2 conv + LayerNorm between stages, and a LayerNorm on
each output (the dense protocol). Agent-CSWin (LeapLabTHU/Agent-Attention,
``agent_transformer/models/agent_cswin.py``) and FLatten-CSWin (LeapLabTHU/FLatten-Transformer,
``models/flatten_cswin.py``) replace the attention of the first two stages.

Plug-in contract (see ``backbones/base.py`` and ``layers/attn_builder.py``)
-------------------------------------------------------------------------
Each block's op is built from ``attn_cfgs`` with ``embed_dims`` and the stage facts its
``__init__`` declares: ``num_heads``, ``qkv_bias``, ``qk_scale``, ``attn_drop_rate``,
``proj_drop_rate``, ``split_size`` (the arch's stripe width; None in the last stage, which
attends globally), ``pretrain_hw`` (the stage map at ``pretrain_img_size``: 56/28/14/7 at
224), ``stage_index``, ``block_index``, ``fused_attn`` (when given) and, for Agent-CSWin,
``agent_num``.

In the official Agent/FLatten-CSWin the agent (``A``) and linear (``L``) stages use a stripe
as large as the map (``CSWIN_LA_SPLIT_SIZE`` 56-28-14-7 at 224), which the official block turns
into one global branch over all heads; here they are the global :class:`AgentAttention`
(its depthwise conv on V is the branch's LePE ``get_v``) and :class:`FocusedLinearAttention`
with ``lepe_kernel_size=3`` (the branch's ``get_v``, besides its own rank-restoration conv).

Input sizes: any ``H x W``; the convs floor like the official ones (``floor((H - 3) / 4) + 1``
tokens in stage 1, ``ceil(/ 2)`` after each merge); stripe ops pad inside.
"""

from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmattn.models.layers.block import BlockSequence, TransformerBlock
from mmattn.models.layers.patch_embed import ConvPatchEmbed
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS

from .agent_stages import AgentStagesMixin
from .base import BaseBackbone

__all__ = ['CSWin', 'AgentCSWin', 'FLattenCSWin']


class CSWinStem(nn.Module):
    """``Conv2d(7, stride 4, padding 2)`` + LayerNorm (the official ``stage1_conv_embed``)."""

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, 7, 4, 2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if x.shape[2] < 3 or x.shape[3] < 3:
            raise ValueError(
                f'input {x.shape[2]}x{x.shape[3]} is smaller than the 7x7 stride-4 '
                'stem can read (at least 3 px per side; 32 for four stages)'
            )
        x = self.proj(x)
        return self.norm(map_to_tokens(x)), (x.shape[2], x.shape[3])


class CSWinStage(nn.Module):
    """An optional merge (3x3 stride-2 conv + LayerNorm) followed by blocks."""

    def __init__(self, merge: Optional[nn.Module], blocks: Sequence[TransformerBlock]) -> None:
        super().__init__()
        self.merge = merge
        self.blocks = BlockSequence(blocks)

    def forward(
        self, x: torch.Tensor, hw_shape: Tuple[int, int]
    ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Tokens of the previous stage's ``hw_shape`` map -> this stage's tokens and map size."""
        if self.merge is not None:
            x, hw_shape = self.merge(tokens_to_map(x, hw_shape))
        return self.blocks(x, hw_shape), hw_shape


@MODELS.register_module()
class CSWin(BaseBackbone):
    """CSWin layout with the attention of each block chosen by config (CSWin itself by default).

    See the module docstring for the plug-in contract, and ``backbones/base.py`` for
    ``arch``, ``out_indices``, ``frozen_stages``, ``norm_eval`` and init. ``frozen_stages=0``
    freezes the stem; stage ``i`` is the merge in front of it, its blocks and its output norm.

    Args:
        arch (str | dict): ``'t'``/``'tiny'``, ``'s'``, ``'b'``, or a dict with
            ``embed_dims`` (int; doubled by every merge), ``depths``, ``num_heads`` and
            optionally ``split_sizes`` (stripe width per stage; the last stage is global
            whatever it says). Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None: the
            family's default (:meth:`default_attn_cfgs`).
        in_channels (int): Input channels. Defaults to 3.
        pretrain_img_size (int | tuple[int, int]): Pretraining input size (``pretrain_hw``).
            Defaults to 224.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        out_indices (sequence[int]): Stages to output. Defaults to (0, 1, 2, 3).
        out_norms (bool): A LayerNorm ``norm{i}`` on each output (the dense CSWin's
            ``norm1..4``); False returns the raw stage outputs. Defaults to True.
        qkv_bias (bool): Passed to the ops. Defaults to True.
        qk_scale (float, optional): Passed to the ops. Defaults to None.
        drop_rate (float): Dropout in the MLP and the ops' ``proj_drop_rate``. Defaults to 0.
        attn_drop_rate (float): The ops' ``attn_drop_rate``. Defaults to 0.
        drop_path_rate (float): Stochastic depth, linear over blocks. Defaults to 0.1.
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and stages 0..k-1.
            Defaults to -1.
        norm_eval (bool): BatchNorms keep their statistics in training (the skeleton has only
            LayerNorms). Defaults to False.
        with_cp (bool): Gradient checkpointing per block (the official ``use_chk``).
            Defaults to False.
        fused_attn (bool, optional): The ops' fused-kernel switch; None keeps each op's
            default. Defaults to None.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)``.
            Defaults to None.
    """

    #: CSWin's own variants (CSWin-T/S/B, ``models/cswin.py``)
    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'], dict(embed_dims=64, depths=[1, 2, 21, 1], num_heads=[2, 4, 8, 16])
        ),
        **dict.fromkeys(
            ['s', 'small'], dict(embed_dims=64, depths=[2, 4, 32, 2], num_heads=[2, 4, 8, 16])
        ),
        **dict.fromkeys(
            ['b', 'base'], dict(embed_dims=96, depths=[2, 4, 32, 2], num_heads=[4, 8, 16, 32])
        ),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    arch_defaults = dict(split_sizes=[1, 2, 7, 7])
    arch_scalars = ('embed_dims',)

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        in_channels: int = 3,
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        mlp_ratio: float = 4.0,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norms: bool = True,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        fused_attn: Optional[bool] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        self.in_channels, self.mlp_ratio, self.out_norms = in_channels, mlp_ratio, out_norms
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
    def num_features(self) -> List[int]:
        """Channels of each stage (every merge doubles them)."""
        return [int(self.arch['embed_dims'] * 2**i) for i in range(self.num_stages)]

    def build_stages(self, attns) -> None:
        depths = self.arch['depths']
        self.patch_embed = CSWinStem(self.in_channels, self.num_features[0])
        # (on the CPU: the rates are numbers, also when the model is built on the meta device)
        dpr = torch.linspace(0, self.drop_path_rate, sum(depths), device='cpu').tolist()
        cur = 0
        self.stages = nn.ModuleList()
        for i in range(self.num_built):
            dims = self.num_features[i]
            merge = ConvPatchEmbed(self.num_features[i - 1], dims, 2, 3) if i else None
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
            self.stages.append(CSWinStage(merge, blocks))
        if self.out_norms:
            for i in self.out_indices:
                self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

    def default_attn_cfgs(self):
        return dict(type='CSWinAttention')

    def op_dims(self, i: int) -> int:
        return self.num_features[i]

    def stage_facts(self, i: int, j: int) -> dict:
        split = None if i == self.num_stages - 1 else self.arch['split_sizes'][i]
        return dict(super().stage_facts(i, j), split_size=split)

    def stem_parts(self) -> Iterable:
        return [self.patch_embed]

    def stage_parts(self, i: int) -> Iterable:
        parts = [self.stages[i]]
        if self.out_norms and i in self.out_indices:
            parts.append(getattr(self, f'norm{i}'))
        return parts

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward ``(B, C, H, W)`` images; returns the NCHW maps of ``out_indices``."""
        x, hw = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x, hw = stage(x, hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if self.out_norms else x
                outs.append(tokens_to_map(out, hw).contiguous())  # see pack_outputs
        return self.pack_outputs(outs)


@MODELS.register_module()
class AgentCSWin(AgentStagesMixin, CSWin):
    """Agent-CSWin (Han et al., ECCV 2024, arXiv 2312.08874): global agent attention in
    stages 1-2 (official ``ATTN_TYPE: AABB``), CSWin attention in stages 3-4.

    Arch tables from the official yamls ``agent_cswin_{t,s,b}.yaml``: T 64 / 2-4-18-1, S 64 /
    3-6-29-2, B 96 / 3-6-29-2; heads 2-4-8-16 (B 4-8-16-32), stripes 1-2-7-7, agents 9-16-49-49
    (official drop path 0.2 / 0.4 / 0.5 on ImageNet).

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        agent_nums (sequence[int]): Agents per stage, a stage fact for every op that declares
            ``agent_num``. Defaults to (9, 16, 49, 49).
        agent_shapes (sequence, optional): Run-time agent grid per stage. Defaults to None:
            the pretrained grids (the official code has no dense variant to take others from).
        **kwargs: Arguments of :class:`CSWin`.
    """

    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'], dict(embed_dims=64, depths=[2, 4, 18, 1], num_heads=[2, 4, 8, 16])
        ),
        **dict.fromkeys(
            ['s', 'small'], dict(embed_dims=64, depths=[3, 6, 29, 2], num_heads=[2, 4, 8, 16])
        ),
        **dict.fromkeys(
            ['b', 'base'], dict(embed_dims=96, depths=[3, 6, 29, 2], num_heads=[4, 8, 16, 32])
        ),
    }

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        agent_nums: Sequence[int] = (9, 16, 49, 49),
        agent_shapes: Optional[Sequence] = None,
        **kwargs,
    ) -> None:
        self.set_agents(arch, agent_nums, agent_shapes)
        super().__init__(arch=arch, **kwargs)

    def default_attn_cfgs(self):
        n = self.num_stages
        return [dict(type='AgentAttention')] * min(2, n - 1) + [dict(type='CSWinAttention')] * (
            n - min(2, n - 1)
        )


@MODELS.register_module()
class FLattenCSWin(CSWin):
    """FLatten-CSWin (Han et al., ICCV 2023, arXiv 2308.00442): global focused linear
    attention with LePE in stages 1-2 (official ``ATTN_TYPE: LLSS``), CSWin attention in 3-4.

    Arch tables from the official yamls ``flatten_cswin_{t,s,b}.yaml``: T 64 / 2-4-18-1,
    S 64 / 2-4-32-2, B 96 / 3-6-29-2; heads 2-4-8-16 (B 4-8-16-32), stripes 1-2-7-7,
    focusing factor 3, rank-restoration kernel 5 (official drop path 0.2 / 0.4 / 0.5).

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        **kwargs: Arguments of :class:`CSWin`.
    """

    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'], dict(embed_dims=64, depths=[2, 4, 18, 1], num_heads=[2, 4, 8, 16])
        ),
        **dict.fromkeys(
            ['s', 'small'], dict(embed_dims=64, depths=[2, 4, 32, 2], num_heads=[2, 4, 8, 16])
        ),
        **dict.fromkeys(
            ['b', 'base'], dict(embed_dims=96, depths=[3, 6, 29, 2], num_heads=[4, 8, 16, 32])
        ),
    }

    def default_attn_cfgs(self):
        n = self.num_stages
        linear = dict(type='FocusedLinearAttention', lepe_kernel_size=3)
        return [linear] * min(2, n - 1) + [dict(type='CSWinAttention')] * (n - min(2, n - 1))
