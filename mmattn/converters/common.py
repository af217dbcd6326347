"""What every official-checkpoint converter shares."""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

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


def audit_key_mapping(converted: Dict[str, torch.Tensor], expected_shapes: Dict[str, tuple],
                      unused: List[str], label: str, target: str = 'the mmattn backbone',
                      allowed_missing: Tuple[str, ...] = ()) -> None:
    """Refuse a conversion that is not a complete, exact mapping onto the target model.

    Args:
        converted: The converted state dict.
        expected_shapes: Key -> shape of the target model's state dict.
        unused: Official keys that mapped to nothing (and were not knowingly dropped).
        label: The variant, for the message (e.g. ``'Agent-PVT-tiny'``).
        target: How to name the target model in the message.
        allowed_missing: Target keys that start fresh (e.g. dense output norms).

    Raises:
        ConversionError: Listing every kind of problem found, at most 10 keys of each.
    """
    missing = [k for k in expected_shapes if k not in converted and k not in allowed_missing]
    extra = [k for k in converted if k not in expected_shapes]
    shapes = [f'{k}: {tuple(converted[k].shape)} vs {tuple(s)}'
              for k, s in expected_shapes.items()
              if k in converted and tuple(converted[k].shape) != tuple(s)]
    problems = []
    if unused:
        problems.append(f'{len(unused)} unused official keys: {unused[:10]}')
    if extra:
        problems.append(f'{len(extra)} keys unknown to {target}: {extra[:10]}')
    if missing:
        problems.append(f'{len(missing)} missing keys: {missing[:10]}')
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches: {shapes[:10]}')
    if problems:
        raise ConversionError(f'refusing to convert ({label}): ' + '; '.join(problems))


def describe_layout(attn_cfgs) -> str:
    """One line per stage: which ops an ``attn_cfgs`` list (one entry per stage, a dict or a
    list per block) puts where, e.g. ``'stage 3: 2 x AgentAttention + 16 x ShiftWindowMSA'``."""
    parts = []
    for i, entry in enumerate(attn_cfgs):
        blocks = [entry] if isinstance(entry, dict) else list(entry)
        runs = []
        for cfg in blocks:
            if runs and runs[-1][1] == cfg['type']:
                runs[-1][0] += 1
            else:
                runs.append([1, cfg['type']])
        ops = ' + '.join(t if isinstance(entry, dict) else f'{n} x {t}' for n, t in runs)
        parts.append(f'stage {i + 1}: {ops}')
    return '; '.join(parts)
