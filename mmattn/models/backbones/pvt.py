"""PVT v1 style pyramid skeleton with a pluggable attention per stage, and Agent-PVT.

The skeleton follows PVT v1 (Wang et al., ICCV 2021, arXiv 2102.12122,
https://github.com/whai362/PVT) as used by Agent-PVT (LeapLabTHU/Agent-Attention,
``agent_transformer/models/agent_pvt.py`` and ``downstream/*/backbones/agent_pvt.py``).

Plug-in contract (what an attention op gets; see ``mmattn/models/layers/attn_builder.py``)
-------------------------------------------------------------------------------------------
Stage ``i`` builds each block's token mixer from ``attn_cfgs[i]`` (or the single dict given
for all stages) with ``build_module``. The keyword arguments passed, which the config's own
keys override:

- always: ``embed_dims`` (stage channels), ``num_heads``, ``qkv_bias``, ``qk_scale``,
  ``attn_drop_rate``, ``proj_drop_rate`` (= the skeleton's ``drop_rate``);
- only to ops whose ``__init__`` declares them:
  ``sr_ratio`` (the stage's ``sr_ratios[i]``, e.g. 8/4/2/1),
  ``pretrain_hw`` (the stage's feature-map size at ``pretrain_img_size``: 56x56, 28x28,
  14x14, 7x7 for 224 — what Agent biases / FLatten positional encodings are sized by),
  ``stage_index`` (``i``) and ``block_index`` (the block's index inside the stage).

The op is called as ``op(x, hw_shape)`` with ``x`` of shape ``(B, H*W, C)`` (already
layer-normed) and must return the same shape for any ``(H, W)``. The block adds the residual,
drop path and the MLP.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmattn.models.layers.arch_utils import init_linear_and_norm, select_arch
from mmattn.models.layers.attn_builder import build_attention
from mmattn.registry import MODELS

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def _pair(x: Union[int, Sequence[int]]) -> Tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (official names)."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop_rate: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class PVTPatchEmbed(nn.Module):
    """Non-overlapping conv patch embedding + LayerNorm; sizes are floored like the official."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims)  # eps 1e-5, as the official PatchEmbed

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        p = self.proj.kernel_size[0]
        if x.shape[2] < p or x.shape[3] < p:
            raise ValueError(
                f'PVT stage input {x.shape[2]}x{x.shape[3]} is smaller than its {p}x{p} patch '
                f'embedding: the image is smaller than the backbone\'s total stride; pad or '
                f'resize it (at least 32 px per side for the 4-stage pyramid)')
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class PVTBlock(nn.Module):
    """Pre-norm transformer block: ``x + DP(attn(LN(x))); x + DP(mlp(LN(x)))``."""

    def __init__(self, embed_dims: int, attn: nn.Module, mlp_ratio: float, drop_rate: float,
                 drop_path_rate: float, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PVTStage(nn.Module):
    """Patch embedding, absolute position embedding (resized to the input) and blocks."""

    def __init__(self, patch_embed: PVTPatchEmbed, pretrain_hw: Tuple[int, int],
                 embed_dims: int, blocks: List[PVTBlock], drop_rate: float) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.pretrain_hw = pretrain_hw
        self.pos_embed = nn.Parameter(torch.zeros(1, pretrain_hw[0] * pretrain_hw[1], embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList(blocks)

    def resized_pos_embed(self, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """``(1, H*W, C)`` position embedding, bilinearly resized from ``pretrain_hw``."""
        if tuple(hw_shape) == tuple(self.pretrain_hw):
            return self.pos_embed
        h0, w0 = self.pretrain_hw
        pos = self.pos_embed.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=hw_shape, mode='bilinear')
        return pos.flatten(2).transpose(1, 2)


@MODELS.register_module()
class PyramidVisionTransformerSkeleton(BaseModule):
    """PVT v1 layout with the attention of each stage chosen by config.

    See the module docstring for the plug-in contract. Outputs a tuple of NCHW maps (strides
    4/8/16/32 for the default patch sizes) for ``out_indices``; like the official Agent-PVT
    dense backbone there are no output norms.

    Args:
        arch (str | dict): A key of ``arch_zoo`` (``'t'``/``'tiny'``, ``'s'``, ``'m'``, ``'l'``)
            or a dict with ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``depths``,
            ``sr_ratios``. Defaults to ``'tiny'``.
        attn_cfgs (dict | list[dict]): The attention config of every stage, or one per stage.
            Defaults to ``dict(type='SpatialReductionAttention')``.
        in_channels (int): Input channels. Defaults to 3.
        patch_sizes (sequence[int]): Patch size of each stage's embedding. Defaults to
            (4, 2, 2, 2).
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
        norm_eps (float): Epsilon of the block LayerNorms. Defaults to 1e-6.
        frozen_stages (int): Freeze stages ``0..frozen_stages-1`` (patch embedding, position
            embedding, blocks); -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep norm layers in eval mode while training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)`` with a
            converted checkpoint. Defaults to None.
    """
    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(
            embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
            depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1])),
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
            depths=[3, 4, 6, 3], sr_ratios=[8, 4, 2, 1])),
        **dict.fromkeys(['m', 'medium'], dict(
            embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
            depths=[3, 4, 18, 3], sr_ratios=[8, 4, 2, 1])),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
            depths=[3, 8, 27, 3], sr_ratios=[8, 4, 2, 1])),
    }
    _arch_keys = {'embed_dims', 'num_heads', 'mlp_ratios', 'depths', 'sr_ratios'}

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_cfgs: Union[dict, Sequence[dict]] = dict(type='SpatialReductionAttention'),
                 in_channels: int = 3,
                 patch_sizes: Sequence[int] = (4, 2, 2, 2),
                 pretrain_img_size: Union[int, Sequence[int]] = 224,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        embed_dims, depths = self.arch['embed_dims'], self.arch['depths']
        num_stages = len(depths)
        if isinstance(attn_cfgs, dict):
            attn_cfgs = [attn_cfgs] * num_stages
        attn_cfgs = list(attn_cfgs)
        if len(attn_cfgs) != num_stages:
            raise ValueError(f'attn_cfgs has {len(attn_cfgs)} entries for {num_stages} stages')
        for i in out_indices:
            if not 0 <= i < num_stages:
                raise ValueError(f'out_indices {out_indices} out of range for {num_stages} stages')
        self.num_stages = num_stages
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.embed_dims = list(embed_dims)

        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        img_hw = _pair(pretrain_img_size)
        stride, cur = 1, 0
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            stride *= patch_sizes[i]
            pretrain_hw = (img_hw[0] // stride, img_hw[1] // stride)
            common = dict(embed_dims=embed_dims[i], num_heads=self.arch['num_heads'][i],
                          qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop_rate=attn_drop_rate,
                          proj_drop_rate=drop_rate)
            blocks = []
            for j in range(depths[i]):
                facts = dict(sr_ratio=self.arch['sr_ratios'][i], pretrain_hw=pretrain_hw,
                             stage_index=i, block_index=j)
                attn = build_attention(copy.deepcopy(attn_cfgs[i]), common, facts)
                blocks.append(PVTBlock(embed_dims[i], attn, self.arch['mlp_ratios'][i],
                                       drop_rate, dpr[cur + j], norm_eps))
            cur += depths[i]
            patch_embed = PVTPatchEmbed(in_channels if i == 0 else embed_dims[i - 1],
                                        embed_dims[i], patch_sizes[i])
            self.layers.append(PVTStage(patch_embed, pretrain_hw, embed_dims[i], blocks,
                                        drop_rate))
        self._init_default()
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        return select_arch(cls.__name__, cls.arch_zoo, cls._arch_keys, arch)

    def _init_default(self) -> None:
        """Random init of the official code (used unless a Pretrained init_cfg loads weights)."""
        init_linear_and_norm(self)
        for layer in self.layers:
            trunc_normal_(layer.pos_embed, std=.02)

    def _freeze_stages(self) -> None:
        for i in range(min(self.frozen_stages, self.num_stages)):
            layer = self.layers[i]
            layer.eval()
            for p in layer.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'PyramidVisionTransformerSkeleton':
        """Set train mode, keeping frozen stages (and norms with ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _NORMS):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward ``(B, C, H, W)`` images; returns the NCHW maps of ``out_indices``."""
        outs = []
        b = x.shape[0]
        for i, layer in enumerate(self.layers):
            x, hw = layer.patch_embed(x)
            x = layer.pos_drop(x + layer.resized_pos_embed(hw))
            for blk in layer.blocks:
                if self.with_cp and x.requires_grad:
                    x = cp.checkpoint(blk, x, hw, use_reentrant=False)
                else:
                    x = blk(x, hw)
            x = x.transpose(1, 2).reshape(b, -1, *hw)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@MODELS.register_module()
class AgentPVT(PyramidVisionTransformerSkeleton):
    """Agent-PVT (Han et al., ECCV 2024, arXiv 2312.08874): PVT v1 with agent attention.

    As the official code (``attn_type='AAAA'``), every stage uses :class:`AgentAttention`
    with no spatial reduction; agents per stage 9/16/49/49 at pretraining.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'m'``, ``'l'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        agent_nums (sequence[int]): Pretrained agents per stage (squares).
            Defaults to (9, 16, 49, 49).
        agent_shapes (sequence, optional): Agent grid per stage at run time (the official
            dense ``downstream_agent_shapes``, e.g. 12-16-28-28 as ``[(12, 12), (16, 16),
            (28, 28), (28, 28)]``). Defaults to None: the pretrained grids.
        attn_types (str): One letter per stage: ``'A'`` agent attention, ``'B'`` PVT
            spatial-reduction attention. Defaults to ``'AAAA'``.
        agent_cfg (dict, optional): Extra arguments of every agent op (e.g. ``fused``).
            Defaults to None.
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton` except
            ``attn_cfgs``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 agent_nums: Sequence[int] = (9, 16, 49, 49),
                 agent_shapes: Optional[Sequence] = None,
                 attn_types: str = 'AAAA',
                 agent_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if 'attn_cfgs' in kwargs:
            raise TypeError('AgentPVT builds attn_cfgs itself; use the skeleton for custom ops')
        n = len(attn_types)
        agent_shapes = list(agent_shapes) if agent_shapes is not None else [None] * n
        if not len(agent_nums) == len(agent_shapes) == n:
            raise ValueError('agent_nums, agent_shapes and attn_types need one entry per stage')
        cfgs = []
        for i, letter in enumerate(attn_types):
            if letter == 'A':
                cfgs.append(dict(type='AgentAttention', agent_num=int(agent_nums[i]),
                                 agent_shape=agent_shapes[i], sr_ratio=1, **(agent_cfg or {})))
            elif letter == 'B':
                cfgs.append(dict(type='SpatialReductionAttention'))
            else:
                raise ValueError(f'attn_types letters are A (agent) or B (PVT), got {attn_types}')
        super().__init__(arch=arch, attn_cfgs=cfgs, **kwargs)
