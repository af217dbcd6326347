"""BiFormer backbones (T/S/B) for dense prediction.

Reference: Zhu et al., "BiFormer: Vision Transformer with Bi-Level Routing Attention",
CVPR 2023; official code https://github.com/rayleizhu/BiFormer (``models/biformer.py`` and the
dense wrappers ``object_detection/models_mm/biformer_mm.py``,
``semantic_segmentation/models_mm/biformer_mm.py``).
"""

from collections import OrderedDict
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import ModuleList

from mmattn.models.layers.block import TransformerBlock
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS

from .base import BaseBackbone

__all__ = ['BiFormer']


class BiFormerBlock(TransformerBlock):
    """BiFormer block on NCHW maps: ``x += dwconv3x3(x)``, then the pre-norm block.

    ``x += attn(LN(x))``; ``x += MLP(LN(x))`` with drop path, LayerNorms of eps 1e-6 (the
    official "important to avoid attention collapsing") and an MLP without dropout.

    Args:
        embed_dims (int): Channels.
        attn (nn.Module): The token mixer.
        mlp_ratio (float): Hidden ratio of the MLP. Defaults to 3.
        drop_path_rate (float): Stochastic depth of both branches. Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to GELU.
        with_cp (bool): Gradient checkpointing of the whole block. Defaults to False.
    """

    def __init__(
        self,
        embed_dims: int,
        attn: nn.Module,
        mlp_ratio: float = 3.0,
        drop_path_rate: float = 0.0,
        act_cfg: dict = dict(type='GELU'),
        with_cp: bool = False,
    ) -> None:
        super().__init__(
            embed_dims,
            attn,
            mlp_ratio,
            drop_path_rate=drop_path_rate,
            norm_cfg=dict(type='LN', eps=1e-6),
            act_cfg=act_cfg,
            with_cp=with_cp,
        )
        self.pos_embed = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def _forward_map(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x + self.pos_embed(x)
        # NOTE: through NHWC, not flatten/transpose: the block's input is a BatchNorm output
        # (stem, downsampling), whose CPU backward is wrong for the latter's gradient layout at
        # batch size 1 (see mmattn/models/layers/tokens.py).
        x = map_to_tokens(x)  # (B, N, C)
        x = self._forward(x, (h, w))
        return tokens_to_map(x, (h, w)).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward an NCHW map; returns the same shape."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward_map, x, use_reentrant=False)
        return self._forward_map(x)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (the official dense wrapper's extra norms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


@MODELS.register_module()
class BiFormer(BaseBackbone):
    """BiFormer backbone, the dense-prediction form of the official ``BiFormer_mm``.

    Four stages at strides 4/8/16/32: a stem of two stride-2 3x3 convs (norm + GELU between,
    norm after), then a 3x3 stride-2 conv + norm before stages 2-4. By default (the paper's
    layout, from the arch's ``topks``) stages with ``topk > 0`` use Bi-Level Routing Attention
    with ``n_win x n_win`` regions and ``topk`` routed regions, ``qk_dims`` equal to the stage
    width and ``qk_dims // head_dims`` heads; stages with ``topk=-2`` use global attention +
    LePE with 8 heads, because the official backbone builds it without passing the head count.
    As in the official dense wrappers, there is no classifier head or final norm, and each
    output level gets its own LayerNorm (eps 1e-6); here only the levels in ``out_indices``
    have one.

    Plug-in contract: every op gets ``embed_dims``; ops that declare them also get
    ``num_heads`` (``qk_dims // head_dims``), ``n_win``, ``topk`` (the arch's ``topks[i]``),
    ``qk_dims``, ``side_dwconv``, ``pretrain_hw``, ``stage_index``, ``block_index`` and
    ``fused_attn`` (when given). See ``backbones/base.py`` for ``arch``,
    ``out_indices``, ``frozen_stages``, ``norm_eval`` and init.

    Input sizes: the stem and downsampling convs (stride 2, padding 1) give
    ``ceil(H / 4) x ceil(W / 4)`` tokens in stage 1 and ``ceil(/ 2)`` after each downsampling;
    regions per side are fixed, so their size follows the input (the official configs use
    ``n_win=7`` for ImageNet 224, 16 for COCO and 8 for ADE20K 512 crops), and BRA zero-pads
    a map that ``n_win`` does not divide and crops back (the official ``auto_pad=True``).

    Args:
        arch (str | dict): ``'tiny'/'t'``, ``'small'/'s'``, ``'base'/'b'`` or a dict with
            ``embed_dims``, ``depths``, ``topks`` (and optionally ``mlp_ratios``,
            ``qk_dims``). Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None: the
            layout above.
        in_channels (int): Input channels. Defaults to 3.
        n_win (int): Regions per side for the BRA stages. Defaults to 7.
        head_dims (int): Channels per head. Defaults to 32.
        side_dwconv (int): LePE kernel size. Defaults to 5.
        out_indices (Sequence[int]): Stages whose (normalised) maps are returned.
            Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 nothing; 0 the stem; k the stem and stages 0..k-1 (with the
            downsampling in front of them and their output norms). Defaults to -1.
        norm_eval (bool): Keep the BatchNorms of the stem and downsampling layers in eval mode
            while training (the official detection wrapper's default). Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        drop_path_rate (float): Stochastic depth, linearly increased over blocks.
            Defaults to 0.
        norm_cfg (dict): Norm of the stem and downsampling (``SyncBN`` in the official
            segmentation code). Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation of the stem and the MLPs. Defaults to GELU.
        pretrain_img_size (int | tuple[int, int]): Pretraining input size (sizes
            ``pretrain_hw``). Defaults to 224.
        fused_attn (bool, optional): The ops' fused-kernel switch (BRA: gather-once SDPA);
            None keeps each op's default. Defaults to None.
        pretrained (str, optional): Deprecated, use ``init_cfg``. Defaults to None.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained',
            checkpoint=...)`` with a checkpoint converted by
            ``tools/model_converters/biformer2mmattn.py``. Defaults to None.
    """

    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'],
            dict(
                embed_dims=[64, 128, 256, 512],
                depths=[2, 2, 8, 2],
                topks=[1, 4, 16, -2],
                mlp_ratios=[3, 3, 3, 3],
            ),
        ),
        **dict.fromkeys(
            ['s', 'small'],
            dict(
                embed_dims=[64, 128, 256, 512],
                depths=[4, 4, 18, 4],
                topks=[1, 4, 16, -2],
                mlp_ratios=[3, 3, 3, 3],
            ),
        ),
        **dict.fromkeys(
            ['b', 'base'],
            dict(
                embed_dims=[96, 192, 384, 768],
                depths=[4, 4, 18, 4],
                topks=[1, 4, 16, -2],
                mlp_ratios=[3, 3, 3, 3],
            ),
        ),
    }
    arch_keys = ('embed_dims', 'depths', 'topks')
    arch_defaults = dict(mlp_ratios=None, qk_dims=None)

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        in_channels: int = 3,
        n_win: int = 7,
        head_dims: int = 32,
        side_dwconv: int = 5,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        drop_path_rate: float = 0.0,
        norm_cfg: dict = dict(type='BN', requires_grad=True),
        act_cfg: dict = dict(type='GELU'),
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        fused_attn: Optional[bool] = None,
        pretrained: Optional[str] = None,
        init_cfg: Optional[Union[dict, List[dict]]] = None,
    ) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('set init_cfg or pretrained, not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        self.in_channels, self.n_win, self.head_dims = in_channels, n_win, head_dims
        self.side_dwconv, self.with_cp, self.drop_path_rate = side_dwconv, with_cp, drop_path_rate
        self.norm_cfg, self.act_cfg = norm_cfg, act_cfg
        super().__init__(
            arch,
            attn_cfgs,
            out_indices,
            frozen_stages,
            norm_eval,
            pretrain_img_size,
            fused_attn,
            init_cfg=init_cfg,
        )

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """The arch with ``mlp_ratios`` (3) and ``qk_dims`` (the widths) filled in."""
        a = super().parse_arch(arch)
        n = len(a['depths'])
        a['mlp_ratios'] = a['mlp_ratios'] or [3] * n
        a['qk_dims'] = a['qk_dims'] or list(a['embed_dims'])
        for i, topk in enumerate(a['topks']):
            if topk <= 0 and topk != -2:
                raise ValueError(
                    f'topk {topk} of stage {i}: BiFormer supports topk > 0 '
                    '(routing) and -2 (global attention + LePE)'
                )
        return a

    def build_stages(self, attns) -> None:
        a, norm_cfg = self.arch, self.norm_cfg
        embed_dims, depths = a['embed_dims'], a['depths']
        self.embed_dims = embed_dims
        half = embed_dims[0] // 2
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(self.in_channels, half, 3, stride=2, padding=1),
                bn1=build_norm_layer(norm_cfg, half)[1],
                act=build_activation_layer(self.act_cfg),
                conv2=nn.Conv2d(half, embed_dims[0], 3, stride=2, padding=1),
                bn2=build_norm_layer(norm_cfg, embed_dims[0])[1],
            )
        )
        self.downsamples = ModuleList(
            [
                nn.Sequential(
                    OrderedDict(
                        conv=nn.Conv2d(embed_dims[i], embed_dims[i + 1], 3, stride=2, padding=1),
                        bn=build_norm_layer(norm_cfg, embed_dims[i + 1])[1],
                    )
                )
                for i in range(self.num_built - 1)
            ]
        )

        rate = self.drop_path_rate
        dpr = [rate * i / max(sum(depths) - 1, 1) for i in range(sum(depths))]
        self.stages = ModuleList()
        cur = 0
        for i in range(self.num_built):
            # Sequential: the blocks take and return NCHW maps
            self.stages.append(
                nn.Sequential(
                    *[
                        BiFormerBlock(
                            embed_dims[i],
                            attns[i][j],
                            mlp_ratio=a['mlp_ratios'][i],
                            drop_path_rate=dpr[cur + j],
                            act_cfg=self.act_cfg,
                            with_cp=self.with_cp,
                        )
                        for j in range(depths[i])
                    ]
                )
            )
            cur += depths[i]
        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(embed_dims[i], eps=1e-6))

    def default_attn_cfgs(self):
        return [
            dict(type='BiLevelRoutingAttention')
            if topk > 0
            # NOTE: 8 heads on purpose: the official model builds this op without num_heads
            else dict(type='GlobalAttentionLePE', num_heads=8)
            for topk in self.arch['topks']
        ]

    def op_heads(self, i: int) -> int:
        return self.arch['qk_dims'][i] // self.head_dims

    def stage_facts(self, i: int, j: int) -> dict:
        return dict(
            super().stage_facts(i, j),
            n_win=self.n_win,
            topk=self.arch['topks'][i],
            qk_dims=self.arch['qk_dims'][i],
            side_dwconv=self.side_dwconv,
        )

    def stem_parts(self) -> Iterable:
        return [self.stem]

    def stage_parts(self, i: int) -> Iterable:
        parts = [self.stages[i]]
        if i > 0:
            parts.append(self.downsamples[i - 1])
        if i in self.out_indices:
            parts.append(getattr(self, f'norm{i}'))
        return parts

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward an image batch (B, C, H, W); returns the NCHW maps of ``out_indices``."""
        outs = []
        for i in range(self.num_built):
            x = self.stem(x) if i == 0 else self.downsamples[i - 1](x)
            x = self.stages[i](x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
        return self.pack_outputs(outs)
