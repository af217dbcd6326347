"""Convert official Shunted Transformer ImageNet checkpoints to :class:`ShuntedTransformer`.

The official training script (OliverRensu/Shunted-Transformer, ``main.py``) saves
``{'model': state_dict, 'optimizer': ..., 'lr_scheduler': ..., 'epoch': ..., 'scaler': ...,
'args': argparse.Namespace}``; released files may hold only ``{'model': ...}``. Key mapping:

==========================================  ==============================================
official                                    mmattn
==========================================  ==============================================
``patch_embed1.conv.{3j}.weight``           ``patch_embeds.0.convs.{j}.conv.weight``
``patch_embed1.conv.{3j+1}.*`` (BN)         ``patch_embeds.0.convs.{j}.bn.*``
``patch_embed1.conv.{3n+3}.*`` (2x2 conv)   ``patch_embeds.0.proj.*``
``patch_embed{i}.{proj,norm}.*``            ``patch_embeds.{i-1}.{proj,norm}.*``
``block{i}.{j}.{norm1,norm2,attn}.*``       ``stages.{i-1}.{j}.{norm1,norm2,attn}.*``
``block{i}.{j}.mlp.{fc1,fc2}.*``            ``stages.{i-1}.{j}.mlp.{fc1,fc2}.*``
``block{i}.{j}.mlp.dwconv.dwconv.*``        ``stages.{i-1}.{j}.mlp.dwconv.*``
``norm{i}.*``                               ``norm{i}.*``
``head.*``                                  dropped (classifier)
==========================================  ==============================================
"""

import argparse
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from mmattn.converters.common import (
    TSB_ARCHS,
    ConversionError,
    audit_key_mapping,
    block_depths,
    check_arch,
    save_converted,
    unwrap_state_dict,
)
from mmattn.utils.checkpoint import safe_load


def infer_arch(sd: Dict[str, torch.Tensor]) -> str:
    """Name (``'tiny'/'small'/'base'``) of the official variant that produced ``sd``."""
    from mmattn.models.backbones.shunted import ShuntedTransformer

    if 'patch_embed1.conv.0.weight' not in sd or 'block1.0.attn.q.weight' not in sd:
        raise ConversionError(
            'not an official Shunted Transformer checkpoint: the keys '
            "'patch_embed1.conv.0.weight' and 'block1.0.attn.q.weight' are missing"
        )
    depths = block_depths(sd, r'block%d\.(\d+)\.', 4, 1)
    convs = {
        int(m.group(1))
        for k in sd
        for m in [re.match(r'patch_embed1\.conv\.(\d+)\.weight$', k)]
        if m
    }
    num_convs = max(convs) // 3 - 1 if convs else -1
    for name in ('tiny', 'small', 'base'):
        arch = ShuntedTransformer.arch_zoo[name]
        if arch['depths'] == depths and arch['num_convs'] == num_convs:
            return name
    raise ConversionError(
        f'checkpoint has depths {depths} and {num_convs} stem convs, which '
        f'match no Shunted variant (T/S/B)'
    )


def _map_key(key: str, num_convs: int) -> Optional[str]:
    """mmattn name of an official key; None for unknown keys."""
    m = re.match(r'patch_embed1\.conv\.(\d+)\.(.+)$', key)
    if m:
        idx, rest = int(m.group(1)), m.group(2)
        layer, pos = divmod(idx, 3)
        if layer <= num_convs and pos == 0 and rest == 'weight':
            return f'patch_embeds.0.convs.{layer}.conv.weight'
        if layer <= num_convs and pos == 1:
            return f'patch_embeds.0.convs.{layer}.bn.{rest}'
        if idx == 3 * (num_convs + 1) and rest in ('weight', 'bias'):
            return f'patch_embeds.0.proj.{rest}'
        return None
    m = re.match(r'patch_embed([1-4])\.(proj|norm)\.(weight|bias)$', key)
    if m:
        if m.group(1) == '1' and m.group(2) == 'proj':
            return None
        return f'patch_embeds.{int(m.group(1)) - 1}.{m.group(2)}.{m.group(3)}'
    m = re.match(r'block([1-4])\.(\d+)\.(.+)$', key)
    if m:
        prefix, rest = f'stages.{int(m.group(1)) - 1}.{m.group(2)}', m.group(3)
        rest = rest.replace('mlp.dwconv.dwconv.', 'mlp.dwconv.')
        return f'{prefix}.{rest}'
    if re.match(r'norm[1-4]\.(weight|bias)$', key):
        return key
    return None


def convert_shunted(
    ckpt, arch: Optional[str] = None
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an official checkpoint to mmattn names and check it against the backbone.

    Args:
        ckpt (dict): The loaded official file (``{'model': sd, ...}`` or a bare state dict).
        arch (str, optional): Expected variant (``'t'/'tiny'``, ...); refused on mismatch.

    Returns:
        tuple: ``(state_dict, report)``; ``report`` has ``arch``, ``dropped`` (classifier keys)
        and ``num_keys``.

    Raises:
        ConversionError: Not a Shunted checkpoint, a variant mismatch, unknown (unused) keys,
            missing keys or shape mismatches. Nothing partial is returned.
    """
    from mmattn.models.backbones.shunted import ShuntedTransformer

    sd = unwrap_state_dict(ckpt)
    found = infer_arch(sd)
    check_arch(arch, TSB_ARCHS, found, 'Shunted', f'Shunted-{found[0].upper()} ({found})')
    num_convs = ShuntedTransformer.arch_zoo[found]['num_convs']
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    dropped: List[str] = []
    unused: List[str] = []
    for k, v in sd.items():
        if k.startswith('head.'):
            dropped.append(k)  # ImageNet classifier, not part of the backbone
            continue
        new = _map_key(k, num_convs)
        if new is None:
            unused.append(k)
        else:
            out[new] = v
    expected = ShuntedTransformer(arch=found, drop_path_rate=0.0).state_dict()
    audit_key_mapping(
        out,
        {k: v.shape for k, v in expected.items()},
        unused,
        f'Shunted-{found[0].upper()}',
        target='ShuntedTransformer',
    )
    return out, dict(arch=found, dropped=dropped, num_keys=len(out))


def convert_file(src: str, dst: str, arch: Optional[str] = None) -> dict:
    """Convert ``src`` and write ``{'state_dict', 'meta'}`` to ``dst`` atomically.

    Nothing is written when :func:`convert_shunted` refuses.
    """
    # The official trainer pickles its argparse.Namespace under 'args'; allow exactly that
    # type on top of safe_load's allow-list.
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = safe_load(src)
    state_dict, report = convert_shunted(ckpt, arch)
    return save_converted(
        dst, state_dict, report, ('arch',), source=src, converter='mmattn.converters.shunted'
    )
