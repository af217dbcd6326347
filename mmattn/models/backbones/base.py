"""What every mmattn backbone shares: arch tables, attention configs, freezing, init.

:class:`BaseBackbone` holds the conventions once, so that a reader who learned one family
knows them all (STYLE.md section 9). The contract of a subclass:

- class attributes: ``arch_zoo``, ``arch_keys`` (and ``arch_defaults``, ``arch_scalars``),
  ``stage_strides`` (a property where the strides follow constructor arguments);
- ``__init__`` stores its own options on ``self`` (plain values), then calls
  ``super().__init__(arch, attn_cfgs, ...)``, which parses the shared arguments, builds every
  block's op, calls :meth:`build_stages` with them and freezes (:meth:`_freeze_stages`);
- hooks: :meth:`default_attn_cfgs`, :meth:`build_stages`, :meth:`stem_parts`,
  :meth:`stage_parts`, and optionally :meth:`stage_facts` (extend the facts offered to the
  ops), :meth:`op_dims`, :meth:`op_heads`, :meth:`default_init`, :meth:`parse_arch`.

The conventions:

- ``arch``: a name or alias of the class's ``arch_zoo`` (case-insensitive), or a dict with
  every key of ``arch_keys`` (per-stage lists, one entry per stage) plus any of
  ``arch_defaults``; unknown keys are refused, naming the valid ones.
- ``attn_cfgs``: the op of every block, one dict or one entry per stage (a dict, or a list with
  one dict per block); default: the paper's op(s) (:meth:`default_attn_cfgs`). Each block's
  op is built by :func:`~mmattn.models.layers.attn_builder.build_attention` with
  ``embed_dims`` and those of the stage facts (:meth:`stage_facts`: ``num_heads``, the
  skeleton's ``qkv_bias``/``qk_scale``/drop rates, ``sr_ratio``, ``pretrain_hw``, ...) that
  the op's ``__init__`` declares; the op config's own keys override them.
- ``out_indices``: the stages to output (negative indices count from the end); stages after
  ``max(out_indices)`` are neither built nor run, so no parameter goes unused under DDP and
  the state dict of a pruned backbone is a subset of the full one (a full checkpoint loads
  through ``init_cfg=dict(type='Pretrained')``, which reports the unused keys).
- ``frozen_stages``: -1 freezes nothing; 0 the stem; ``k >= 1`` the stem and stages
  ``0..k-1``, i.e. everything the first ``k`` outputs are computed from (eval mode, no
  gradient), as MMDetection's backbones.
- ``norm_eval``: BatchNorm layers (incl. SyncBN) keep their running statistics while training.
  LayerNorm and GroupNorm have none, so in a LayerNorm-only backbone (PVT, Swin, FLatten,
  EA-PVT without BN in their ops) it changes nothing.
- Weight init happens in :meth:`init_weights` only: the family's official random init
  (:meth:`default_init`) over the whole backbone, then the ``init_weights`` of every block's
  op that has one (an op's own init wins over the skeleton-wide one), then ``init_cfg``
  (e.g. ``Pretrained``) last.
- ``fused_attn``: None keeps each op's default; True/False is given to every op that has a
  ``fused_attn`` switch.
- Outputs: ``forward`` returns its maps through :meth:`pack_outputs`, as standard-layout
  (contiguous NCHW) tensors. A map made from tokens by a view is channels-last in memory, and
  mmcv 2.1's compiled ``RoIAlign`` reads its input's memory as NCHW without checking the strides
  (its Python wrapper hands the tensor to the CPU or CUDA kernel as is): on such a map (and on
  every FPN level computed from it, since convolutions keep the layout) Mask R-CNN's RoI
  features come out spatially scrambled, and the detector cannot learn (open-mmlab/mmcv#2203,
  open since 2022; MMDetection's own Swin and PVT also return contiguous maps).
"""

import copy
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from mmengine.utils import to_2tuple
from torch.nn.modules.batchnorm import _BatchNorm

from mmattn.models.layers.attn_builder import build_attention, expand_attn_cfgs
from mmattn.models.layers.block import TransformerBlock

__all__ = ['BaseBackbone']

Part = Union[nn.Module, nn.Parameter]


class BaseBackbone(BaseModule):
    """Base of the mmattn backbones (see the module docstring for the contract).

    Args:
        arch (str | dict): A name or alias of ``arch_zoo``, or a dict (see :meth:`parse_arch`).
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None:
            :meth:`default_attn_cfgs`.
        out_indices (sequence[int]): Stages to output. Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and stages 0..k-1.
            Defaults to -1.
        norm_eval (bool): BatchNorms keep their statistics in training. Defaults to False.
        pretrain_img_size (int | tuple[int, int]): Pretraining input size (sizes
            :meth:`pretrain_hw`). Defaults to 224.
        fused_attn (bool, optional): The ops' fused-kernel switch; None keeps each op's
            default. Defaults to None.
        op_knobs (dict, optional): Skeleton-wide facts offered to every op (``qkv_bias``,
            ``qk_scale``, drop rates). Defaults to None.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained',
            checkpoint=...)``. Defaults to None.
    """

    #: name (and aliases) -> arch dict
    arch_zoo: Dict[str, dict] = {}
    #: keys a custom arch dict must have (per-stage lists unless in ``arch_scalars``)
    arch_keys: Tuple[str, ...] = ()
    #: optional keys of a custom arch dict and their defaults
    arch_defaults: Dict[str, object] = {}
    #: keys whose value is not a per-stage list
    arch_scalars: Tuple[str, ...] = ()
    #: output stride of each stage for the default patch sizes (sizes ``pretrain_hw``)
    stage_strides: Tuple[int, ...] = (4, 8, 16, 32)

    def __init__(
        self,
        arch: Union[str, dict],
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        fused_attn: Optional[bool] = None,
        op_knobs: Optional[dict] = None,
        init_cfg: Optional[Union[dict, List[dict]]] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_name = arch.lower() if isinstance(arch, str) else None
        self.arch = self.parse_arch(arch)
        self.num_stages = len(self.arch['depths'])
        self.out_indices = self._parse_out_indices(out_indices)
        #: stages built and run: those up to the last output
        self.num_built = self.out_indices[-1] + 1
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(
                f'frozen_stages must be in [-1, {self.num_stages}], got {frozen_stages}'
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.pretrain_img_size = to_2tuple(pretrain_img_size)
        self.fused_attn = fused_attn
        self.op_knobs = dict(op_knobs or {})
        self.build_stages(self.build_stage_attentions(attn_cfgs))
        self._freeze_stages()

    def _parse_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out = []
        for i in out_indices:
            if not -self.num_stages <= int(i) < self.num_stages:
                raise ValueError(
                    f'out_indices {tuple(out_indices)} out of range for {self.num_stages} stages'
                )
            out.append(int(i) % self.num_stages)
        if not out:
            raise ValueError('out_indices is empty: give at least one stage')
        return tuple(sorted(set(out)))

    # ------------------------------------------------------------------ arch and stages
    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """A copy of ``arch_zoo[arch]`` or of a validated custom arch dict.

        Raises:
            ValueError: Unknown name (listing the valid ones), missing or unknown keys, or a
                per-stage list of the wrong length.
        """
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(
                    f'unknown arch {arch!r} for {cls.__name__}; choose from '
                    f'{sorted(cls.arch_zoo)} or give a dict with '
                    f'{sorted(cls.arch_keys)}'
                )
            arch = cls.arch_zoo[key]
        elif not isinstance(arch, dict):
            raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')
        missing = sorted(set(cls.arch_keys) - set(arch))
        unknown = sorted(set(arch) - set(cls.arch_keys) - set(cls.arch_defaults))
        if missing or unknown:
            raise ValueError(
                f'custom arch for {cls.__name__}: missing keys {missing}, unknown '
                f'keys {unknown}; required {sorted(cls.arch_keys)}, optional '
                f'{sorted(cls.arch_defaults)}'
            )
        out = copy.deepcopy({**cls.arch_defaults, **dict(arch)})
        n = len(out['depths'])
        for key, value in out.items():
            if key in cls.arch_scalars or key == 'depths' or value is None:
                continue
            if len(value) != n:
                raise ValueError(f'arch[{key!r}] has {len(value)} entries for {n} stages')
        return out

    def pretrain_hw(self, i: int) -> Tuple[int, int]:
        """Feature-map size of stage ``i`` at ``pretrain_img_size``."""
        s = self.stage_strides[i]
        return (self.pretrain_img_size[0] // s, self.pretrain_img_size[1] // s)

    # ------------------------------------------------------------------ attention ops
    def default_attn_cfgs(self):
        """The paper's op(s), in the ``attn_cfgs`` format (override per family)."""
        raise NotImplementedError

    def op_dims(self, i: int) -> int:
        """``embed_dims`` of the ops of stage ``i`` (the one argument every op receives)."""
        return self.arch['embed_dims'][i]

    def op_heads(self, i: int) -> int:
        """``num_heads`` offered to the ops of stage ``i``."""
        return self.arch['num_heads'][i]

    def stage_facts(self, i: int, j: int) -> dict:
        """Facts offered to the op of block ``j`` of stage ``i``; an op receives those its
        ``__init__`` declares (extend per family, e.g. ``sr_ratio``, ``shift``)."""
        facts = dict(
            num_heads=self.op_heads(i),
            **self.op_knobs,
            pretrain_hw=self.pretrain_hw(i),
            stage_index=i,
            block_index=j,
        )
        if self.fused_attn is not None:  # None: each op keeps its own default
            facts['fused_attn'] = self.fused_attn
        return facts

    def build_stage_attentions(self, attn_cfgs) -> List[List[nn.Module]]:
        """The op of every block of the built stages, from ``attn_cfgs`` (None: the default)."""
        if attn_cfgs is None:
            attn_cfgs = self.default_attn_cfgs()
        cfgs = expand_attn_cfgs(attn_cfgs, self.arch['depths'])
        #: the expanded op configs, one list per stage (for the record and the converters)
        self.attn_cfgs = cfgs
        return [
            [
                build_attention(cfg, dict(embed_dims=self.op_dims(i)), self.stage_facts(i, j))
                for j, cfg in enumerate(cfgs[i])
            ]
            for i in range(self.num_built)
        ]

    def build_stages(self, attns: List[List[nn.Module]]) -> None:
        """Build the stem and the ``range(self.num_built)`` stages around ``attns[i][j]``, the
        op of block ``j`` of stage ``i`` (override per family)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ freezing
    def stem_parts(self) -> Iterable[Part]:
        """Modules/parameters frozen by ``frozen_stages >= 0``."""
        raise NotImplementedError

    def stage_parts(self, i: int) -> Iterable[Part]:
        """Modules/parameters that compute stage ``i``'s output from stage ``i - 1``'s."""
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        parts = list(self.stem_parts())
        for i in range(min(self.frozen_stages, self.num_built)):
            parts += list(self.stage_parts(i))
        for part in parts:
            if isinstance(part, nn.Parameter):
                part.requires_grad = False
                continue
            part.eval()
            for p in part.parameters():
                p.requires_grad = False

    @staticmethod
    def pack_outputs(outs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """The backbone's output tuple, every map in the standard (contiguous NCHW) layout.

        Costs one copy per map that is not already contiguous; see the module docstring for
        the mmcv ``RoIAlign`` failure it prevents. Stages copy each output map as soon as it is
        made, so this is then a no-op: copying all of them here, at the end, would keep every
        stage's token tensor alive beside the copies (a higher inference peak).
        """
        return tuple(out.contiguous() for out in outs)

    def train(self, mode: bool = True) -> 'BaseBackbone':
        """Train mode that keeps frozen stages, and BatchNorms with ``norm_eval``, in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------ init
    def default_init(self) -> None:
        """The official random init: truncated-normal Linear weights (std .02), zero biases,
        LayerNorm 1/0 (extend per family)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=0.02, bias=0.0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.0)

    def init_weights(self) -> None:
        """Family default, then every op's own ``init_weights``, then ``init_cfg``."""
        if self.is_init:
            return
        with torch.no_grad():
            self.default_init()
        for m in self.modules():
            op = getattr(m, 'attn', None) if isinstance(m, TransformerBlock) else None
            if (
                op is not None
                and callable(getattr(op, 'init_weights', None))
                and not getattr(op, 'is_init', False)
            ):
                op.init_weights()  # an op's own init wins over the skeleton-wide default
                op.is_init = True
        super().init_weights()
