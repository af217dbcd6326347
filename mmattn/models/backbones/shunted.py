"""Shunted Transformer backbones (Shunted-T/S/B) for dense prediction.

Reference: Ren et al., "Shunted Self-Attention via Multi-Scale Token Aggregation", CVPR 2022
(arXiv 2111.15193); official code https://github.com/OliverRensu/Shunted-Transformer (``SSA.py``).
"""

from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule, ModuleList

from mmattn.models.layers.block import BlockSequence, TransformerBlock
from mmattn.models.layers.patch_embed import ConvPatchEmbed
from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.models.layers.weight_init import conv_fan_out_init
from mmattn.registry import MODELS

from .base import BaseBackbone

__all__ = ['ShuntedTransformer']


class ShuntedStem(BaseModule):
    """Stage-1 stem: 7x7/2 conv-BN-ReLU, ``num_convs`` x 3x3 conv-BN-ReLU, 2x2/2 conv, LN.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Channels of every stem conv (64 in the official models).
        num_convs (int): Extra 3x3 convs (0/1/2 for T/S/B).
        norm_cfg (dict): Norm of the convs. Defaults to BN.
    """

    def __init__(
        self, in_channels: int, embed_dims: int, num_convs: int, norm_cfg: dict = dict(type='BN')
    ) -> None:
        super().__init__()
        act = dict(type='ReLU')
        convs = [
            ConvModule(
                in_channels,
                embed_dims,
                7,
                stride=2,
                padding=3,
                bias=False,
                norm_cfg=norm_cfg,
                act_cfg=act,
            )
        ]
        convs += [
            ConvModule(
                embed_dims, embed_dims, 3, padding=1, bias=False, norm_cfg=norm_cfg, act_cfg=act
            )
            for _ in range(num_convs)
        ]
        self.convs = nn.Sequential(*convs)
        self.proj = nn.Conv2d(embed_dims, embed_dims, 2, stride=2)
        self.norm = nn.LayerNorm(embed_dims)  # eps 1e-5 as in the official stem

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Image (B, 3, H, W) -> tokens (B, N, C) and their map size (floored H/4, W/4)."""
        x = self.proj(self.convs(x))
        return self.norm(map_to_tokens(x)), tuple(x.shape[2:])


@MODELS.register_module()
class ShuntedTransformer(BaseBackbone):
    """Shunted Transformer (Shunted-T/S/B) with four NCHW outputs at strides 4/8/16/32.

    By default every block uses :class:`~mmattn.models.attentions.ShuntedSelfAttention` with
    the stage's aggregation rate (``sr_ratio``) and a detail-specific FFN (a depthwise 3x3 conv
    inside the MLP). The official classifier applies a LayerNorm after each stage
    (``norm1..norm4``, eps 1e-6) and feeds the *normalised* tokens to the next stage, so
    ``norm1..norm3`` sit on the main path and double as the dense output norms; ``norm4`` is the
    output norm of the last stage.

    Plug-in contract: every op gets ``embed_dims``; ops that declare them also get
    ``num_heads``, ``qkv_bias``, ``qk_scale``, ``attn_drop_rate``, ``proj_drop_rate``,
    ``sr_ratio``, ``pretrain_hw``, ``stage_index``, ``block_index`` and ``fused_attn`` (when
    given). See
    ``backbones/base.py`` for ``arch``, ``out_indices``, ``frozen_stages``, ``norm_eval`` and
    init.

    Input sizes: floored, as the official convs. The stem (7x7 stride-2 conv, padding 3, then a
    2x2 stride-2 conv) gives ``floor(ceil(H / 2) / 2)`` rows in stage 1 and each 3x3 stride-2
    patch embedding (padding 1) ``ceil(/ 2)``; Shunted attention's aggregation convs floor too,
    and refuse a map smaller than their rate with a ``ValueError``.

    Args:
        arch (str | dict): ``'tiny'/'t'``, ``'small'/'s'``, ``'base'/'b'``, or a dict with
            ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``sr_ratios``, ``depths``,
            ``num_convs``. Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None:
            ``dict(type='ShuntedSelfAttention')``.
        in_channels (int): Image channels. Defaults to 3.
        qkv_bias (bool): Bias in q / kv linears. Defaults to True.
        qk_scale (float, optional): Attention scale override. Defaults to None.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth, increasing linearly over blocks.
            Defaults to 0.1.
        out_indices (Sequence[int]): Stages whose (normalised) maps are returned.
            Defaults to ``(0, 1, 2, 3)``.
        frozen_stages (int): -1 nothing; 0 the stem; k the stem and stages 0..k-1 (patch
            embedding, blocks and norm). Defaults to -1.
        norm_eval (bool): Keep the stem's BN layers in eval mode while training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        stem_norm_cfg (dict): Norm of the stem convs. Defaults to ``dict(type='BN')``.
        norm_cfg (dict): Block and stage norms. Defaults to ``dict(type='LN', eps=1e-6)``.
        act_cfg (dict): FFN activation. Defaults to ``dict(type='GELU')``.
        pretrain_img_size (int | tuple[int, int]): Pretraining input size (sizes
            ``pretrain_hw``). Defaults to 224.
        fused_attn (bool, optional): The ops' fused-kernel switch; None keeps each op's
            default. Defaults to None.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)`` with a
            checkpoint from ``tools/model_converters/shunted2mmattn.py``. Defaults to None.
    """

    arch_zoo = {
        **dict.fromkeys(
            ['t', 'tiny'],
            dict(
                embed_dims=[64, 128, 256, 512],
                num_heads=[2, 4, 8, 16],
                mlp_ratios=[8, 8, 4, 4],
                sr_ratios=[8, 4, 2, 1],
                depths=[1, 2, 4, 1],
                num_convs=0,
            ),
        ),
        **dict.fromkeys(
            ['s', 'small'],
            dict(
                embed_dims=[64, 128, 256, 512],
                num_heads=[2, 4, 8, 16],
                mlp_ratios=[8, 8, 4, 4],
                sr_ratios=[8, 4, 2, 1],
                depths=[2, 4, 12, 1],
                num_convs=1,
            ),
        ),
        **dict.fromkeys(
            ['b', 'base'],
            dict(
                embed_dims=[64, 128, 256, 512],
                num_heads=[2, 4, 8, 16],
                mlp_ratios=[8, 8, 4, 4],
                sr_ratios=[8, 4, 2, 1],
                depths=[3, 4, 24, 2],
                num_convs=2,
            ),
        ),
    }
    arch_keys = ('embed_dims', 'num_heads', 'mlp_ratios', 'sr_ratios', 'depths', 'num_convs')
    arch_scalars = ('num_convs',)

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        in_channels: int = 3,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        stem_norm_cfg: dict = dict(type='BN'),
        norm_cfg: dict = dict(type='LN', eps=1e-6),
        act_cfg: dict = dict(type='GELU'),
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        fused_attn: Optional[bool] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        self.in_channels, self.drop_rate = in_channels, drop_rate
        self.drop_path_rate, self.with_cp = drop_path_rate, with_cp
        self.stem_norm_cfg = stem_norm_cfg
        self.norm_cfg, self.act_cfg = norm_cfg, act_cfg
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

    def build_stages(self, attns) -> None:
        s = self.arch
        self.embed_dims = list(s['embed_dims'])
        dpr = torch.linspace(0, self.drop_path_rate, sum(s['depths'])).tolist()
        self.patch_embeds = ModuleList()
        self.stages = ModuleList()
        cur = 0
        for i in range(self.num_built):
            dims = s['embed_dims'][i]
            if i == 0:
                self.patch_embeds.append(
                    ShuntedStem(self.in_channels, dims, s['num_convs'], self.stem_norm_cfg)
                )
            else:
                self.patch_embeds.append(
                    ConvPatchEmbed(s['embed_dims'][i - 1], dims, patch_size=2, kernel_size=3)
                )
            self.stages.append(
                BlockSequence(
                    [
                        TransformerBlock(
                            dims,
                            attns[i][j],
                            s['mlp_ratios'][i],
                            self.drop_rate,
                            dpr[cur + j],
                            norm_cfg=self.norm_cfg,
                            act_cfg=self.act_cfg,
                            mlp_dw_kernel_size=3,
                            with_cp=self.with_cp,
                        )
                        for j in range(s['depths'][i])
                    ]
                )
            )
            cur += s['depths'][i]
            # Official name `norm{i+1}`: on the main path for i < last, output norm otherwise.
            self.add_module(f'norm{i + 1}', build_norm_layer(self.norm_cfg, dims)[1])

    def default_attn_cfgs(self):
        return dict(type='ShuntedSelfAttention')

    def stage_facts(self, i: int, j: int) -> dict:
        return dict(super().stage_facts(i, j), sr_ratio=self.arch['sr_ratios'][i])

    def stem_parts(self) -> Iterable:
        return [self.patch_embeds[0]]

    def stage_parts(self, i: int) -> Iterable:
        return [self.patch_embeds[i], self.stages[i], getattr(self, f'norm{i + 1}')]

    def default_init(self) -> None:
        """Official init: trunc-normal linears, unit LayerNorms, fan-out normal convs."""
        super().default_init()
        conv_fan_out_init(self)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Image (B, C, H, W) -> tuple of NCHW maps of the stages in ``out_indices``."""
        outs: List[torch.Tensor] = []
        for i in range(self.num_built):
            x, hw_shape = self.patch_embeds[i](x)
            x = self.stages[i](x, hw_shape)
            x = getattr(self, f'norm{i + 1}')(x)
            x = tokens_to_map(x, hw_shape)
            if i in self.out_indices:
                outs.append(x.contiguous())  # now, not in pack_outputs: see its docstring
        return self.pack_outputs(outs)
