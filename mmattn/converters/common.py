"""What every official-checkpoint converter shares."""
import re
from collections import OrderedDict
from typing import Dict, List

import torch


class ConversionError(ValueError):
    """The input is not a (complete) official checkpoint of the family or variant asked for.

    Converters raise it before writing anything; the CLIs print it as one line.
    """


def unwrap_state_dict(ckpt) -> Dict[str, torch.Tensor]:
    """The model state dict of an official checkpoint.

    Accepts the trainer layout (``{'model': sd, ...}``), ``{'state_dict': sd}`` or a bare state
    dict, and strips DDP's ``module.`` prefix. Every entry must be a tensor.
    """
    if not isinstance(ckpt, dict):
        raise ConversionError(f'expected a dict checkpoint, got {type(ckpt).__name__}')
    for key in ('model', 'state_dict'):
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    sd = OrderedDict()
    for k, v in ckpt.items():
        if not torch.is_tensor(v):
            raise ConversionError(f'entry {k!r} is not a tensor: not a model state dict')
        sd[k[7:] if k.startswith('module.') else k] = v
    return sd


def block_depths(sd: Dict[str, torch.Tensor], pattern: str, num: int, offset: int) -> List[int]:
    """Blocks per stage, read off the keys: ``pattern % stage`` must capture the block index."""
    out = []
    for i in range(num):
        idx = {int(m.group(1)) for k in sd for m in [re.match(pattern % (i + offset), k)] if m}
        out.append(max(idx) + 1 if idx else 0)
    return out
