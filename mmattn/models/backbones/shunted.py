"""Shunted Transformer backbones (Shunted-T/S/B) for dense prediction.

Reference: Ren et al., "Shunted Self-Attention via Multi-Scale Token Aggregation", CVPR 2022
(arXiv 2111.15193); official code https://github.com/OliverRensu/Shunted-Transformer (``SSA.py``).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, normal_init, trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmattn.models.attentions.shunted_self_attention import check_shunted_rate
from mmattn.registry import MODELS, build_module


class DetailSpecificFFN(BaseModule):
    """Detail-specific feed-forward: ``fc2(act(h + DWConv3x3(h)))`` with ``h = fc1(x)``.

    Args:
        embed_dims (int): Input / output channels.
        hidden_dims (int): Hidden channels.
        act_cfg (dict): Activation. Defaults to ``dict(type='GELU')``.
        drop_rate (float): Dropout after the activation and after ``fc2``. Defaults to 0.
    """

    def __init__(self, embed_dims: int, hidden_dims: int, act_cfg: dict = dict(type='GELU'),
                 drop_rate: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.dwconv = nn.Conv2d(hidden_dims, hidden_dims, 3, padding=1, groups=hidden_dims)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """(B, N, C) tokens on an ``hw_shape`` map -> (B, N, C)."""
        h = self.fc1(x)
        B, N, C = h.shape
        local = self.dwconv(h.transpose(1, 2).reshape(B, C, *hw_shape))
        h = self.drop(self.act(h + local.flatten(2).transpose(1, 2)))
        return self.drop(self.fc2(h))


class ShuntedBlock(BaseModule):
    """Pre-norm block: ``x + SSA(LN(x))``, then ``x + FFN(LN(x))``, with drop-path.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): FFN hidden ratio.
        sr_ratio (int): SSA aggregation rate.
        qkv_bias (bool): Bias in q / kv. Defaults to True.
        qk_scale (float, optional): Attention scale override. Defaults to None.
        drop_rate (float): Dropout in the FFN and after the attention projection.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Stochastic depth of this block.
        act_cfg (dict): FFN activation.
        norm_cfg (dict): Block norms (LN eps 1e-6 in the official models).
        with_cp (bool): Gradient checkpointing of the whole block.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float, sr_ratio: int,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 drop_rate: float = 0., attn_drop_rate: float = 0., drop_path_rate: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6), with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        # Scope-pinned build: works when mmdet/mmseg is the default scope.
        self.attn = build_module(
            dict(type='ShuntedSelfAttention', embed_dims=embed_dims, num_heads=num_heads,
                 sr_ratio=sr_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                 attn_drop_rate=attn_drop_rate, proj_drop_rate=drop_rate))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = DetailSpecificFFN(embed_dims, int(embed_dims * mlp_ratio), act_cfg, drop_rate)

    def _forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.ffn(self.norm2(x), hw_shape))

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, hw_shape, use_reentrant=False)
        return self._forward(x, hw_shape)


class ShuntedStem(BaseModule):
    """Stage-1 stem: 7x7/2 conv-BN-ReLU, ``num_convs`` x 3x3 conv-BN-ReLU, 2x2/2 conv, LN.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Channels of every stem conv (64 in the official models).
        num_convs (int): Extra 3x3 convs (0/1/2 for T/S/B).
        norm_cfg (dict): Norm of the convs. Defaults to BN.
    """

    def __init__(self, in_channels: int, embed_dims: int, num_convs: int,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        act = dict(type='ReLU')
        convs = [ConvModule(in_channels, embed_dims, 7, stride=2, padding=3, bias=False,
                            norm_cfg=norm_cfg, act_cfg=act)]
        convs += [ConvModule(embed_dims, embed_dims, 3, padding=1, bias=False,
                             norm_cfg=norm_cfg, act_cfg=act) for _ in range(num_convs)]
        self.convs = nn.Sequential(*convs)
        self.proj = nn.Conv2d(embed_dims, embed_dims, 2, stride=2)
        self.norm = nn.LayerNorm(embed_dims)  # eps 1e-5 as in the official stem

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Image (B, 3, H, W) -> tokens (B, N, C) and their map size (floored H/4, W/4)."""
        x = self.proj(self.convs(x))
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(x.shape[2:])


class OverlapPatchEmbed(BaseModule):
    """Stages 2-4: overlapping 3x3 stride-2 conv (padding 1) + LN."""

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(embed_dims)  # eps 1e-5 as in the official patch embeds

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """NCHW map -> tokens (B, N, C) and their map size."""
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(x.shape[2:])


@MODELS.register_module()
class ShuntedTransformer(BaseModule):
    """Shunted Transformer (Shunted-T/S/B) with four NCHW outputs at strides 4/8/16/32.

    Every block uses :class:`~mmattn.models.attentions.ShuntedSelfAttention` with the stage's
    aggregation rate. The official classifier applies a LayerNorm after each stage
    (``norm1..norm4``, eps 1e-6) and feeds the *normalised* tokens to the next stage, so
    ``norm1..norm3`` sit on the main path and double as the dense output norms; ``norm4`` is the
    output norm of the last stage. Stages after ``max(out_indices)`` are not built, so no
    parameter goes unused under DDP.

    Args:
        arch (str | dict): ``'tiny'/'t'``, ``'small'/'s'``, ``'base'/'b'``, or a dict with
            ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``sr_ratios``, ``depths``,
            ``num_convs``. Defaults to ``'tiny'``.
        in_channels (int): Image channels. Defaults to 3.
        qkv_bias (bool): Bias in q / kv linears. Defaults to True.
        qk_scale (float, optional): Attention scale override. Defaults to None.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth, increasing linearly over blocks.
            Defaults to 0.1.
        out_indices (Sequence[int]): Stages whose (normalised) maps are returned.
            Defaults to ``(0, 1, 2, 3)``.
        frozen_stages (int): Freeze the stem/patch embed, blocks and norm of stages
            ``0..frozen_stages``; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep the stem's BN layers in eval mode while training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        stem_norm_cfg (dict): Norm of the stem convs. Defaults to ``dict(type='BN')``.
        norm_cfg (dict): Block and stage norms. Defaults to ``dict(type='LN', eps=1e-6)``.
        act_cfg (dict): FFN activation. Defaults to ``dict(type='GELU')``.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)`` with a
            checkpoint from ``tools/model_converters/shunted2mmattn.py``. Defaults to None.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(
            embed_dims=[64, 128, 256, 512], num_heads=[2, 4, 8, 16], mlp_ratios=[8, 8, 4, 4],
            sr_ratios=[8, 4, 2, 1], depths=[1, 2, 4, 1], num_convs=0)),
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=[64, 128, 256, 512], num_heads=[2, 4, 8, 16], mlp_ratios=[8, 8, 4, 4],
            sr_ratios=[8, 4, 2, 1], depths=[2, 4, 12, 1], num_convs=1)),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=[64, 128, 256, 512], num_heads=[2, 4, 8, 16], mlp_ratios=[8, 8, 4, 4],
            sr_ratios=[8, 4, 2, 1], depths=[3, 4, 24, 2], num_convs=2)),
    }
    _arch_keys = ('embed_dims', 'num_heads', 'mlp_ratios', 'sr_ratios', 'depths', 'num_convs')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 stem_norm_cfg: dict = dict(type='BN'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        s = self.arch_settings
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out_indices = sorted(int(i) for i in out_indices)
        if not out_indices or any(i < 0 or i > 3 for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of 0..3, got {out_indices}')
        self.out_indices = tuple(out_indices)
        self.num_built = self.out_indices[-1] + 1
        if not -1 <= frozen_stages < self.num_built:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_built - 1}], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.embed_dims = list(s['embed_dims'])

        dpr = torch.linspace(0, drop_path_rate, sum(s['depths'])).tolist()
        self.patch_embeds = ModuleList()
        self.stages = ModuleList()
        cur = 0
        for i in range(self.num_built):
            dims = s['embed_dims'][i]
            if i == 0:
                self.patch_embeds.append(
                    ShuntedStem(in_channels, dims, s['num_convs'], stem_norm_cfg))
            else:
                self.patch_embeds.append(OverlapPatchEmbed(s['embed_dims'][i - 1], dims))
            self.stages.append(ModuleList([
                ShuntedBlock(dims, s['num_heads'][i], s['mlp_ratios'][i], s['sr_ratios'][i],
                             qkv_bias=qkv_bias, qk_scale=qk_scale, drop_rate=drop_rate,
                             attn_drop_rate=attn_drop_rate, drop_path_rate=dpr[cur + j],
                             act_cfg=act_cfg, norm_cfg=norm_cfg, with_cp=with_cp)
                for j in range(s['depths'][i])
            ]))
            cur += s['depths'][i]
            # Official name `norm{i+1}`: on the main path for i < last, output norm otherwise.
            self.add_module(f'norm{i + 1}', build_norm_layer(norm_cfg, dims)[1])
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f'unknown Shunted arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_zoo)} or pass a dict with keys '
                                 f'{list(cls._arch_keys)}')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or dict, got {type(arch).__name__}')
        missing = [k for k in cls._arch_keys if k not in arch]
        extra = [k for k in arch if k not in cls._arch_keys]
        if missing or extra:
            raise ValueError(f'custom arch dict: missing keys {missing}, unknown keys {extra}; '
                             f'expected {list(cls._arch_keys)}')
        for k in cls._arch_keys[:-1]:
            if len(arch[k]) != 4:
                raise ValueError(f'arch[{k!r}] must have 4 entries (one per stage)')
        for r, h in zip(arch['sr_ratios'], arch['num_heads']):
            check_shunted_rate(r, h)
        return dict(arch)

    def init_weights(self) -> None:
        """Official initialisation unless a pretrained checkpoint is given."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                normal_init(m, mean=0, std=math.sqrt(2.0 / fan_out), bias=0)

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            for m in (self.patch_embeds[i], self.stages[i], getattr(self, f'norm{i + 1}')):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True) -> 'ShuntedTransformer':
        """Keep frozen stages (and, with ``norm_eval``, BN layers) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Image (B, C, H, W) -> tuple of NCHW maps of the stages in ``out_indices``."""
        outs: List[torch.Tensor] = []
        B = x.shape[0]
        for i in range(self.num_built):
            x, hw_shape = self.patch_embeds[i](x)
            for block in self.stages[i]:
                x = block(x, hw_shape)
            x = getattr(self, f'norm{i + 1}')(x)
            x = x.transpose(1, 2).reshape(B, -1, *hw_shape)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
