"""Swin skeleton whose block attention is chosen by letters, and Agent-Swin.

The layout is Swin (Liu et al., ICCV 2021, arXiv 2103.14030) as in the dense code of
LeapLabTHU/Agent-Attention (``downstream/*/backbones/agent_swin.py``): patch embedding
(input padded to the patch size), stages of blocks followed by patch merging (padded to even
sizes), and a LayerNorm on each output.

Plug-in contract
----------------
``attn_types`` gives a letter per block; ``attn_cfgs`` maps each letter to an attention
config (or gives one such mapping per stage). Accepted ``attn_types``:

- the official string: one letter per stage, then an optional number used by ``'M'``, e.g.
  ``'AAAB'``, ``'AABB'``, ``'AAMB2'`` (stage 3 = ``M2``: its first 2 blocks ``'A'``, the rest
  ``'B'``);
- a list with one string per stage: a single letter for the whole stage, or one letter per
  block (``['A', 'A', 'AABBBB', 'B']``).

Default letters: ``'A'`` = :class:`AgentAttention` (global, no window, no shift), ``'B'`` and
``'S'`` = :class:`ShiftWindowMSA` of window 7 (shifted on odd blocks).

Keyword arguments given to each op (its config's keys override them):

- always: ``embed_dims``, ``num_heads``, ``qkv_bias``, ``qk_scale``, ``attn_drop_rate``,
  ``proj_drop_rate``;
- only to ops whose ``__init__`` declares them: ``shift`` (``block_index % 2 == 1``, Swin's
  alternation; window ops shift by half a window), ``pretrain_hw`` (the stage's map size at
  ``pretrain_img_size``: 56/28/14/7 for 224), ``stage_index``, ``block_index``.

The op is called as ``op(x, hw_shape)`` with ``x`` of shape ``(B, H*W, C)`` (layer-normed)
and returns the same shape for any ``(H, W)``; window ops pad and crop inside.
"""
import copy
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from mmattn.models.layers.arch_utils import init_linear_and_norm, select_arch
from mmattn.models.layers.attn_builder import build_attention
from mmattn.registry import MODELS

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)

DEFAULT_LETTERS = dict(
    A=dict(type='AgentAttention'),
    B=dict(type='ShiftWindowMSA', window_size=7),
    S=dict(type='ShiftWindowMSA', window_size=7),
)


def parse_attn_types(attn_types: Union[str, Sequence[str]], depths: Sequence[int]) -> List[str]:
    """Expand ``attn_types`` (see the module docstring) into one letter string per stage."""
    n = len(depths)
    if isinstance(attn_types, str):
        m = re.fullmatch(r'([A-Za-z]{%d})(\d*)' % n, attn_types)
        if m is None:
            raise ValueError(f'attn_types {attn_types!r}: expected {n} letters and an optional '
                             'number for M stages (e.g. "AAMB2")')
        letters, num = m.group(1), m.group(2)
        out = []
        for letter, depth in zip(letters, depths):
            if letter == 'M':
                if not num:
                    raise ValueError(f'attn_types {attn_types!r}: an M stage needs a count')
                k = int(num)
                out.append('A' * min(k, depth) + 'B' * max(depth - k, 0))
            else:
                out.append(letter * depth)
        return out
    attn_types = list(attn_types)
    if len(attn_types) != n:
        raise ValueError(f'attn_types has {len(attn_types)} entries for {n} stages')
    out = []
    for s, depth in zip(attn_types, depths):
        if len(s) == 1:
            s = s * depth
        if len(s) != depth:
            raise ValueError(f'stage letters {s!r} do not match depth {depth}')
        out.append(s)
    return out


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


class SwinPatchEmbed(nn.Module):
    """Conv patch embedding; the input is zero-padded right/bottom to the patch size."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int,
                 patch_norm: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims) if patch_norm else None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
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
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        # Official channel order: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        hw = (x.shape[1], x.shape[2])
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c))), hw


class SwinBlock(nn.Module):
    """Pre-norm block: ``x + DP(attn(LN(x), hw)); x + DP(mlp(LN(x)))``."""

    def __init__(self, embed_dims: int, attn: nn.Module, mlp_ratio: float, drop_rate: float,
                 drop_path_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinStage(nn.Module):
    """Blocks followed by an optional patch merging."""

    def __init__(self, blocks: List[SwinBlock], downsample: Optional[PatchMerging]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


@MODELS.register_module()
class SwinTransformerSkeleton(BaseModule):
    """Swin layout with the attention of each block chosen by a letter.

    See the module docstring for the plug-in contract.

    Args:
        arch (str | dict): A key of ``arch_zoo`` (``'t'``/``'tiny'``, ``'s'``, ``'b'``) or a
            dict with ``embed_dims`` (int), ``depths``, ``num_heads``. Defaults to ``'tiny'``.
        attn_types (str | list[str]): Block letters (see above). Defaults to ``'BBBB'``.
        attn_cfgs (dict | list[dict], optional): ``letter -> attention config`` for all stages
            or one mapping per stage; merged over :data:`DEFAULT_LETTERS`. Defaults to None.
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
        frozen_stages (int): 0 freezes the patch embedding; ``k >= 1`` also stages
            ``0..k-1`` (with their merging and output norms); -1 nothing. Defaults to -1.
        norm_eval (bool): Keep norm layers in eval mode while training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=...)``.
            Defaults to None.
    """
    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 6, 2],
                                            num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=96, depths=[2, 2, 18, 2],
                                             num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=128, depths=[2, 2, 18, 2],
                                            num_heads=[4, 8, 16, 32])),
    }
    _arch_keys = {'embed_dims', 'depths', 'num_heads'}

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_types: Union[str, Sequence[str]] = 'BBBB',
                 attn_cfgs: Optional[Union[dict, Sequence[dict]]] = None,
                 in_channels: int = 3,
                 patch_size: int = 4,
                 pretrain_img_size: Union[int, Sequence[int]] = 224,
                 mlp_ratio: float = 4.,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 patch_norm: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        depths, num_heads = self.arch['depths'], self.arch['num_heads']
        num_stages = len(depths)
        self.num_stages = num_stages
        self.letters = parse_attn_types(attn_types, depths)
        if attn_cfgs is None or isinstance(attn_cfgs, dict):
            attn_cfgs = [attn_cfgs or {}] * num_stages
        if len(attn_cfgs) != num_stages:
            raise ValueError(f'attn_cfgs has {len(attn_cfgs)} entries for {num_stages} stages')
        stage_tables = [{**DEFAULT_LETTERS, **(t or {})} for t in attn_cfgs]
        for i in out_indices:
            if not 0 <= i < num_stages:
                raise ValueError(f'out_indices {out_indices} out of range for {num_stages} stages')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.num_features = [int(self.arch['embed_dims'] * 2**i) for i in range(num_stages)]

        self.patch_embed = SwinPatchEmbed(in_channels, self.num_features[0], patch_size,
                                          patch_norm)
        self.drop_after_pos = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        img_hw = (pretrain_img_size, pretrain_img_size) if isinstance(
            pretrain_img_size, int) else tuple(pretrain_img_size)
        cur = 0
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            dims = self.num_features[i]
            stride = patch_size * 2**i
            pretrain_hw = (img_hw[0] // stride, img_hw[1] // stride)
            common = dict(embed_dims=dims, num_heads=num_heads[i], qkv_bias=qkv_bias,
                          qk_scale=qk_scale, attn_drop_rate=attn_drop_rate,
                          proj_drop_rate=drop_rate)
            blocks = []
            for j, letter in enumerate(self.letters[i]):
                if letter not in stage_tables[i]:
                    raise KeyError(f'stage {i}: no attention config for letter {letter!r}; '
                                   f'known: {sorted(stage_tables[i])}')
                facts = dict(shift=j % 2 == 1, pretrain_hw=pretrain_hw, stage_index=i,
                             block_index=j)
                attn = build_attention(copy.deepcopy(stage_tables[i][letter]), common, facts)
                blocks.append(SwinBlock(dims, attn, mlp_ratio, drop_rate, dpr[cur + j]))
            cur += depths[i]
            downsample = PatchMerging(dims) if i < num_stages - 1 else None
            self.layers.append(SwinStage(blocks, downsample))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._init_default()
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        return select_arch(cls.__name__, cls.arch_zoo, cls._arch_keys, arch)

    def _init_default(self) -> None:
        """Random init of the official code (used unless a Pretrained init_cfg loads weights)."""
        init_linear_and_norm(self)

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        for i in range(min(self.frozen_stages, self.num_stages)):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'SwinTransformerSkeleton':
        """Set train mode, keeping frozen stages (and norms with ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _NORMS):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward ``(B, C, H, W)`` images; returns the normed NCHW maps of ``out_indices``."""
        x, hw = self.patch_embed(x)
        x = self.drop_after_pos(x)
        outs = []
        for i, layer in enumerate(self.layers):
            for blk in layer.blocks:
                if self.with_cp and x.requires_grad:
                    x = cp.checkpoint(blk, x, hw, use_reentrant=False)
                else:
                    x = blk(x, hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.transpose(1, 2).reshape(x.shape[0], -1, *hw).contiguous())
            if layer.downsample is not None:
                x, hw = layer.downsample(x, hw)
        return tuple(outs)


@MODELS.register_module()
class AgentSwin(SwinTransformerSkeleton):
    """Agent-Swin (Han et al., ECCV 2024, arXiv 2312.08874).

    Agent blocks (``'A'``) attend globally over the whole stage map (no window, no shift);
    ``'B'`` blocks are Swin's shifted-window softmax attention of window 7. Official letters:
    T ``'AAAB'``, S ``'AABB'``, B ``'AAMB2'``; agents per stage 9/16/49/49.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        attn_types (str | list[str], optional): Block letters; None takes the official ones
            of the arch. Defaults to None.
        agent_nums (sequence[int]): Pretrained agents per stage. Defaults to (9, 16, 49, 49).
        agent_shapes (sequence, optional): Run-time agent grid per stage (official dense
            ``downstream_agent_shapes``, e.g. 9-12-14-7 as ``[(9, 9), (12, 12), (14, 14),
            (7, 7)]``). Defaults to None: the pretrained grids.
        window_size (int | tuple[int, int]): Window of the ``'B'`` blocks. Defaults to 7.
        agent_cfg (dict, optional): Extra arguments of every agent op. Defaults to None.
        **kwargs: Arguments of :class:`SwinTransformerSkeleton` except ``attn_cfgs``.
    """
    official_attn_types = {'t': 'AAAB', 'tiny': 'AAAB', 's': 'AABB', 'small': 'AABB',
                           'b': 'AAMB2', 'base': 'AAMB2'}

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_types: Optional[Union[str, Sequence[str]]] = None,
                 agent_nums: Sequence[int] = (9, 16, 49, 49),
                 agent_shapes: Optional[Sequence] = None,
                 window_size: Union[int, Sequence[int]] = 7,
                 agent_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if 'attn_cfgs' in kwargs:
            raise TypeError('AgentSwin builds attn_cfgs itself; use the skeleton for custom ops')
        if attn_types is None:
            if not isinstance(arch, str):
                raise ValueError('give attn_types with a custom arch dict')
            attn_types = self.official_attn_types[arch.lower()] if arch.lower(
            ) in self.official_attn_types else 'AAAB'
        n = len(agent_nums)
        agent_shapes = list(agent_shapes) if agent_shapes is not None else [None] * n
        if len(agent_shapes) != n:
            raise ValueError('agent_shapes needs one entry per stage')
        tables = []
        for i in range(n):
            tables.append(dict(
                A=dict(type='AgentAttention', agent_num=int(agent_nums[i]),
                       agent_shape=agent_shapes[i], **(agent_cfg or {})),
                B=dict(type='ShiftWindowMSA', window_size=window_size),
                S=dict(type='ShiftWindowMSA', window_size=window_size)))
        super().__init__(arch=arch, attn_types=attn_types, attn_cfgs=tables, **kwargs)
