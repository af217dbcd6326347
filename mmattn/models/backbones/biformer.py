"""BiFormer backbones (T/S/B) for dense prediction.

Reference: Zhu et al., "BiFormer: Vision Transformer with Bi-Level Routing Attention",
CVPR 2023; official code https://github.com/rayleizhu/BiFormer (``models/biformer.py`` and the
dense wrappers ``object_detection/models_mm/biformer_mm.py``,
``semantic_segmentation/models_mm/biformer_mm.py``).
"""
import copy
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmattn.models.layers.tokens import map_to_tokens, tokens_to_map
from mmattn.registry import MODELS, build_module


class DropPath(nn.Module):
    """Stochastic depth per sample (drop the residual branch)."""

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class BiFormerBlock(BaseModule):
    """BiFormer block: ``x += dwconv3x3(x)``; ``x += attn(LN(x))``; ``x += MLP(LN(x))``.

    Args:
        embed_dims (int): Channels.
        attn_cfg (dict): Config of the token mixer (BRA or global attention), built in the
            mmattn scope; ``embed_dims`` is filled in.
        mlp_ratio (float): Hidden ratio of the MLP. Defaults to 3.
        drop_path_rate (float): Stochastic depth of both branches. Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to GELU.
        with_cp (bool): Gradient checkpointing of the whole block. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 attn_cfg: dict,
                 mlp_ratio: float = 3.,
                 drop_path_rate: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.pos_embed = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        # NOTE: eps 1e-6 as the official code ("important to avoid attention collapsing")
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = build_module(attn_cfg, embed_dims=embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        hidden = int(mlp_ratio * embed_dims)
        self.mlp = nn.Sequential(
            OrderedDict(fc1=nn.Linear(embed_dims, hidden), act=build_activation_layer(act_cfg),
                        fc2=nn.Linear(hidden, embed_dims)))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x + self.pos_embed(x)
        # NOTE: through NHWC, not flatten/transpose: the block's input is a BatchNorm output
        # (stem, downsampling), whose CPU backward is wrong for the latter's gradient layout at
        # batch size 1 (see mmattn/models/layers/tokens.py).
        x = map_to_tokens(x)  # (B, N, C)
        x = x + self.drop_path(self.attn(self.norm1(x), (h, w)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return tokens_to_map(x, (h, w)).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward an NCHW map; returns the same shape."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (the official dense wrapper's extra norms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


@MODELS.register_module()
class BiFormer(BaseModule):
    """BiFormer backbone, the dense-prediction form of the official ``BiFormer_mm``.

    Four stages at strides 4/8/16/32: a stem of two stride-2 3x3 convs (norm + GELU between,
    norm after), then a 3x3 stride-2 conv + norm before stages 2-4. Stages 1-3 use Bi-Level
    Routing Attention with ``n_win x n_win`` regions and ``topks`` routed regions, ``qk_dims``
    equal to the stage width and ``qk_dims // head_dims`` heads; stage 4 (``topk=-2``) uses
    global attention + LePE with that class's default 8 heads, because the official backbone
    builds it without passing the head count. As in the official dense wrappers, there is no
    classifier head or final norm, and each output level gets its own LayerNorm (eps 1e-6);
    here only the levels in ``out_indices`` have one.

    Regions per side are fixed, so their size follows the input: the official configs use
    ``n_win=7`` for ImageNet (224), 16 for COCO and 8 for ADE20K (512 crops). Any input size
    works (the op zero-pads like the official ``auto_pad=True``).

    Args:
        arch (str | dict): ``'tiny'/'t'``, ``'small'/'s'``, ``'base'/'b'`` or a dict with
            ``embed_dims``, ``depths``, ``topks`` (and optionally ``mlp_ratios``,
            ``qk_dims``). Defaults to ``'tiny'``.
        in_channels (int): Input channels. Defaults to 3.
        n_win (int): Regions per side for the BRA stages. Defaults to 7.
        head_dims (int): Channels per head of the BRA stages. Defaults to 32.
        side_dwconv (int): LePE kernel size. Defaults to 5.
        out_indices (Sequence[int]): Stages whose (normalised) maps are returned.
            Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing; 0 the stem; k > 0 also stages 1..k (with
            their downsampling and output norms). Defaults to -1.
        norm_eval (bool): Keep the BatchNorms of the stem and downsampling layers in eval mode
            while training (the official detection wrapper's default). Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        drop_path_rate (float): Stochastic depth, linearly increased over blocks.
            Defaults to 0.
        norm_cfg (dict): Norm of the stem and downsampling (``SyncBN`` in the official
            segmentation code). Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation of the stem and the MLPs. Defaults to GELU.
        fused_attn (bool): Use the gather-once SDPA path of BRA. Defaults to False.
        pretrained (str, optional): Deprecated, use ``init_cfg``. Defaults to None.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained',
            checkpoint=...)`` with a checkpoint converted by
            ``tools/model_converters/biformer2mmattn.py``. Defaults to None.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(
            embed_dims=[64, 128, 256, 512], depths=[2, 2, 8, 2], topks=[1, 4, 16, -2],
            mlp_ratios=[3, 3, 3, 3])),
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=[64, 128, 256, 512], depths=[4, 4, 18, 4], topks=[1, 4, 16, -2],
            mlp_ratios=[3, 3, 3, 3])),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=[96, 192, 384, 768], depths=[4, 4, 18, 4], topks=[1, 4, 16, -2],
            mlp_ratios=[3, 3, 3, 3])),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 n_win: int = 7,
                 head_dims: int = 32,
                 side_dwconv: int = 5,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='GELU'),
                 fused_attn: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if pretrained is not None:
            assert init_cfg is None, 'set init_cfg or pretrained, not both'
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise KeyError(f'unknown BiFormer arch {arch!r}; choose one of '
                               f'{sorted(self.arch_zoo)} or pass a dict')
            arch = self.arch_zoo[arch.lower()]
        missing = {'embed_dims', 'depths', 'topks'} - set(arch)
        if missing:
            raise KeyError(f'a BiFormer arch dict needs {sorted(missing)}')
        arch = copy.deepcopy(arch)
        embed_dims = arch['embed_dims']
        depths = arch['depths']
        topks = arch['topks']
        mlp_ratios = arch.get('mlp_ratios', [3] * 4)
        qk_dims = arch.get('qk_dims', embed_dims)
        num_stages = len(depths)
        self.embed_dims = embed_dims
        self.num_stages = num_stages
        self.out_indices = tuple(i % num_stages for i in out_indices)
        if not 0 <= min(self.out_indices) <= max(self.out_indices) < num_stages:
            raise ValueError(f'out_indices {out_indices} outside 0..{num_stages - 1}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        half = embed_dims[0] // 2
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, half, 3, stride=2, padding=1),
                bn1=build_norm_layer(norm_cfg, half)[1],
                act=build_activation_layer(act_cfg),
                conv2=nn.Conv2d(half, embed_dims[0], 3, stride=2, padding=1),
                bn2=build_norm_layer(norm_cfg, embed_dims[0])[1]))
        self.downsamples = ModuleList([
            nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(embed_dims[i], embed_dims[i + 1], 3, stride=2, padding=1),
                    bn=build_norm_layer(norm_cfg, embed_dims[i + 1])[1]))
            for i in range(num_stages - 1)
        ])

        dpr = [drop_path_rate * i / max(sum(depths) - 1, 1) for i in range(sum(depths))]
        self.stages = ModuleList()
        cur = 0
        for i in range(num_stages):
            if topks[i] > 0:
                attn_cfg = dict(type='BiLevelRoutingAttention', num_heads=qk_dims[i] // head_dims,
                                n_win=n_win, topk=topks[i], qk_dims=qk_dims[i],
                                side_dwconv=side_dwconv, fused_attn=fused_attn)
            elif topks[i] == -2:
                # NOTE: no num_heads on purpose: the official model runs this with 8 heads
                attn_cfg = dict(type='GlobalAttentionLePE', side_dwconv=side_dwconv)
            else:
                raise ValueError(f'topk {topks[i]} of stage {i}: BiFormer supports topk > 0 '
                                 '(routing) and -2 (global attention + LePE)')
            self.stages.append(
                ModuleList([
                    BiFormerBlock(embed_dims[i], attn_cfg, mlp_ratio=mlp_ratios[i],
                                  drop_path_rate=dpr[cur + j], act_cfg=act_cfg, with_cp=with_cp)
                    for j in range(depths[i])
                ]))
            cur += depths[i]
        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(embed_dims[i], eps=1e-6))
        self._freeze_stages()

    def init_weights(self) -> None:
        """Truncated-normal linears and unit LayerNorms (official init), or a checkpoint."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1., bias=0.)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.stem]
        for i in range(min(self.frozen_stages, self.num_stages)):
            if i > 0:
                frozen.append(self.downsamples[i - 1])
            frozen.append(self.stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'BiFormer':
        """Training mode that keeps frozen stages and (with ``norm_eval``) BatchNorms in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward an image batch (B, C, H, W); returns the NCHW maps of ``out_indices``."""
        outs = []
        for i in range(self.num_stages):
            x = self.stem(x) if i == 0 else self.downsamples[i - 1](x)
            for block in self.stages[i]:
                x = block(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
        return tuple(outs)
