"""Build the attention op of a skeleton block from a config: the one path from config to op.

Every backbone takes ``attn_cfgs``: one op config for every block, or one entry per stage,
where an entry is one config for the whole stage or a list with one config per block (mixed
stages such as Agent-Swin-B's third). :func:`expand_attn_cfgs` turns that into one config per
block; :func:`build_attention` builds each block's op:

- *common* keyword arguments go to every op: ``embed_dims`` (the stage width);
- *stage facts* (``num_heads``, the skeleton's ``qkv_bias``, ``qk_scale``, ``attn_drop_rate``,
  ``proj_drop_rate``, and ``sr_ratio``, ``pretrain_hw``, ``shift``, ``window_size``,
  ``agent_num``, ``n_win``, ``topk``, ``fused_attn``, ...) go only to ops whose ``__init__``
  has a parameter of that name, so an op takes exactly the facts it needs and ignores the
  others (a new op needs no argument it does not use);
- keys in the config itself override both.

The op is built with :func:`mmattn.registry.build_module` (mmattn scope pinned, so it works
under an mmdet/mmseg default scope). It follows STYLE.md section 3: ``forward(x, hw_shape)``
with ``x`` of shape ``(B, H*W, C)`` returns the same shape for any ``H, W``.
"""

import copy
import inspect
from typing import List, Optional, Sequence, Union

import torch.nn as nn

from mmattn.registry import MODELS, build_module

__all__ = ['op_accepts', 'op_class', 'op_layout', 'build_attention', 'expand_attn_cfgs']

AttnCfgs = Union[dict, Sequence[Union[dict, Sequence[dict]]]]


def op_class(op_type: Union[str, type]) -> type:
    """The class of an op ``type`` (a registered name, ``'mmattn.Name'``, or a class)."""
    cls = op_type if inspect.isclass(op_type) else MODELS.get(op_type)
    if cls is None:
        known = ', '.join(sorted(MODELS.module_dict))
        raise KeyError(f'unknown attention type {op_type!r}; registered types are: {known}')
    return cls


def op_layout(cls: type) -> Optional[str]:
    """How an op class is driven, read from its signatures.

    Returns:
        str | None: ``'tokens'`` (``__init__`` takes ``embed_dims``, ``forward`` takes
        ``hw_shape``: the contract of STYLE.md section 3), ``'map'`` (``__init__`` takes
        ``in_channels``, ``forward(x)`` on NCHW maps), or None (neither).
    """
    init = inspect.signature(cls.__init__).parameters
    fwd = list(inspect.signature(cls.forward).parameters)
    if 'embed_dims' in init and 'hw_shape' in fwd:
        return 'tokens'
    if 'in_channels' in init and len(fwd) == 2:
        return 'map'
    return None


def op_accepts(cfg: dict, name: str) -> bool:
    """Whether the op class named by ``cfg['type']`` takes a keyword argument ``name``."""
    params = inspect.signature(op_class(cfg['type']).__init__).parameters
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def build_attention(cfg: dict, common: dict, stage_facts: Optional[dict] = None) -> nn.Module:
    """Build an attention op for a skeleton block.

    Args:
        cfg (dict): The op config (``type`` plus op-specific arguments).
        common (dict): Arguments every op receives (see module docstring).
        stage_facts (dict, optional): Arguments given only to ops that declare them.

    Returns:
        nn.Module: The op.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'an attention config must be a dict with "type", got {cfg!r}')
    defaults = dict(common)
    for key, value in (stage_facts or {}).items():
        if op_accepts(cfg, key):
            defaults[key] = value
    return build_module(copy.deepcopy(dict(cfg)), **defaults)


def expand_attn_cfgs(attn_cfgs: AttnCfgs, depths: Sequence[int]) -> List[List[dict]]:
    """One op config per block from ``attn_cfgs`` (see the module docstring).

    Args:
        attn_cfgs (dict | list): One dict for all blocks, or one entry per stage: a dict for
            the whole stage, or a list of ``depths[i]`` dicts.
        depths (Sequence[int]): Blocks per stage.

    Returns:
        list[list[dict]]: ``out[i][j]``, a copy of the config of block ``j`` of stage ``i``.

    Raises:
        ValueError: Wrong number of stages or blocks, naming the expected counts.
        TypeError: An entry is not a config dict with ``type``.
    """
    n = len(depths)
    if isinstance(attn_cfgs, dict):
        attn_cfgs = [attn_cfgs] * n
    attn_cfgs = list(attn_cfgs)
    if len(attn_cfgs) != n:
        raise ValueError(
            f'attn_cfgs has {len(attn_cfgs)} entries for {n} stages: give one op '
            'config for all blocks, or one entry per stage'
        )
    out = []
    for i, (entry, depth) in enumerate(zip(attn_cfgs, depths)):
        blocks = [entry] * depth if isinstance(entry, dict) else list(entry)
        if len(blocks) != depth:
            raise ValueError(
                f'attn_cfgs[{i}] lists {len(blocks)} op configs for the {depth} '
                f'blocks of stage {i}: give one dict for the stage or one per block'
            )
        for cfg in blocks:
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise TypeError(
                    f'attn_cfgs[{i}]: an op config must be a dict with "type", got {cfg!r}'
                )
        out.append([copy.deepcopy(dict(cfg)) for cfg in blocks])
    return out
