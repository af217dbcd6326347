"""Build the attention op of a skeleton block from a config (the plug-in contract).

The PVT and Swin skeletons (``mmattn/models/backbones/{pvt,swin}.py``) never name an
attention class. Each block builds its token mixer from a config with :func:`build_attention`:

- *common* keyword arguments go to every op: ``embed_dims``, ``num_heads``, ``qkv_bias``,
  ``qk_scale``, ``attn_drop_rate``, ``proj_drop_rate``;
- *stage facts* (e.g. ``sr_ratio``, ``pretrain_hw``, ``shift``) go only to ops whose
  ``__init__`` has a parameter of that name, so an op takes exactly the facts it needs;
- keys in the config itself override both.

An op module follows STYLE.md section 3: ``forward(x, hw_shape)`` with ``x`` of shape
``(B, H*W, C)`` returns the same shape; it must accept any ``H, W``.
"""
import inspect
from typing import Optional

import torch.nn as nn

from mmattn.registry import MODELS, build_module


def op_accepts(cfg: dict, name: str) -> bool:
    """Whether the op class named by ``cfg['type']`` takes a keyword argument ``name``."""
    op_type = cfg['type']
    cls = op_type if inspect.isclass(op_type) else MODELS.get(op_type)
    if cls is None:
        raise KeyError(f'unknown attention type {op_type!r}')
    params = inspect.signature(cls.__init__).parameters
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
    return build_module(cfg, **defaults)
