"""Convert official Agent-PVT / Agent-Swin ImageNet checkpoints to :class:`AgentPVT` /
:class:`AgentSwin`.

The official trainer (LeapLabTHU/Agent-Attention, ``agent_transformer/utils.py``) saves
``{'model': state_dict, 'optimizer': ..., 'lr_scheduler': ..., 'max_accuracy': ..., 'epoch':
..., 'config': ...}``; released files may hold only ``{'model': ...}``.

Agent-PVT key mapping (``i`` = 1..4):

==========================================  ==============================================
official                                    mmattn
==========================================  ==============================================
``patch_embed{i}.{proj,norm}.*``            ``layers.{i-1}.patch_embed.{proj,norm}.*``
``pos_embed{i}``                            ``layers.{i-1}.pos_embed``
``block{i}.{j}.attn.q.*`` + ``attn.kv.*``   ``layers.{i-1}.blocks.{j}.attn.qkv.*`` (agent
                                            stages: rows ``[q; k; v]`` concatenated)
``block{i}.{j}.*`` (everything else)        ``layers.{i-1}.blocks.{j}.*``
``head.*``                                  dropped (classifier)
==========================================  ==============================================

Agent-Swin keeps the official names (``patch_embed.*``, ``layers.{i}.blocks.{j}.*``,
``layers.{i}.downsample.*``). Dropped: ``head.*`` and the final ``norm.*`` (classifier),
and the derived buffers ``*.attn_mask`` and ``*.relative_position_index``. The dense output
norms ``norm{i}.*`` are not in an ImageNet checkpoint; they keep their default init (as in the
official dense code, which loads the ImageNet weights with ``strict=False``).
"""

import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from mmattn.converters.common import (
    PVT_ARCHS,
    TSB_ARCHS,
    ConversionError,
    audit_pyramid,
    check_arch,
    map_pvt_keys,
    map_swin_keys,
    pvt_variant,
    save_converted,
    swin_facts,
    unwrap_state_dict,
)
from mmattn.utils.checkpoint import safe_load


def detect_family(sd: Dict[str, torch.Tensor]) -> str:
    """``'pvt'`` or ``'swin'``; raises :class:`ConversionError` for anything else."""
    if (
        'patch_embed1.proj.weight' in sd
        and 'pos_embed1' in sd
        and any(k.startswith('block1.0.attn.') for k in sd)
    ):
        return 'pvt'
    if 'patch_embed.proj.weight' in sd and any(k.startswith('layers.0.blocks.0.attn.') for k in sd):
        return 'swin'
    raise ConversionError(
        'not an official Agent-PVT or Agent-Swin checkpoint: expected the keys '
        "'patch_embed1.proj.weight' + 'pos_embed1' (PVT) or 'patch_embed.proj.weight' + "
        "'layers.0.blocks.0.attn.*' (Swin)"
    )


def _pvt_facts(sd) -> dict:
    from mmattn.models.backbones.pvt import AgentPVT

    arch = pvt_variant(sd, AgentPVT.arch_zoo, 'Agent-PVT')
    cfgs, agent_nums = [], []
    for i in range(1, 5):
        if f'block{i}.0.attn.an_bias' in sd:
            cfgs.append(dict(type='AgentAttention'))
            agent_nums.append(int(sd[f'block{i}.0.attn.an_bias'].shape[1]))
        else:  # the official 'B' stages: PVT's spatial-reduction attention
            cfgs.append(dict(type='SpatialReductionAttention'))
            agent_nums.append(49)
    side = math.isqrt(int(sd['pos_embed1'].shape[1]))
    return dict(
        family='pvt', arch=arch, attn_cfgs=cfgs, agent_nums=agent_nums, pretrain_img_size=side * 4
    )


def _swin_facts(sd) -> dict:
    from mmattn.models.backbones.swin import AgentSwin

    def table_side(key):  # ah_bias: (1, heads, agents, h0, 1) with h0 = img / 4 / 2**i
        return int(sd[key + 'ah_bias'].shape[3]) if key + 'ah_bias' in sd else None

    facts = swin_facts(
        sd,
        AgentSwin.arch_zoo,
        'Agent-Swin',
        'AgentAttention',
        lambda key: key + 'an_bias' in sd,
        table_side,
    )
    facts['agent_nums'] = [
        int(sd[f'layers.{i}.blocks.0.attn.an_bias'].shape[1])
        if f'layers.{i}.blocks.0.attn.an_bias' in sd
        else 49
        for i in range(4)
    ]
    return facts


def _build(facts: dict):
    if facts['family'] == 'pvt':
        from mmattn.models.backbones.pvt import AgentPVT

        return AgentPVT(
            arch=facts['arch'],
            attn_cfgs=facts['attn_cfgs'],
            agent_nums=facts['agent_nums'],
            pretrain_img_size=facts['pretrain_img_size'],
            drop_path_rate=0.0,
        )
    from mmattn.models.backbones.swin import AgentSwin

    return AgentSwin(
        arch=facts['arch'],
        attn_cfgs=facts['attn_cfgs'],
        agent_nums=facts['agent_nums'],
        window_size=facts['window_size'],
        pretrain_img_size=facts['pretrain_img_size'],
        drop_path_rate=0.0,
    )


def _map_pvt(sd, facts) -> Tuple[dict, List[str], List[str]]:
    """PVT names, then an agent stage's ``attn.q`` and ``attn.kv`` rows become one ``qkv``."""
    mapped, dropped, unused = map_pvt_keys(sd)
    out = OrderedDict()
    for k, v in mapped.items():
        m = re.match(r'layers\.(\d)\.blocks\.(\d+)\.attn\.(q|kv)\.(weight|bias)$', k)
        if m is None or facts['attn_cfgs'][int(m.group(1))]['type'] != 'AgentAttention':
            out[k] = v
            continue
        i, j, part, what = m.groups()
        pair = f'layers.{i}.blocks.{j}.attn.{"kv" if part == "q" else "q"}.{what}'
        if pair not in mapped:
            unused.append(f'block{int(i) + 1}.{j}.attn.{part}.{what}')
        elif part == 'q':
            out[f'layers.{i}.blocks.{j}.attn.qkv.{what}'] = torch.cat([v, mapped[pair]], 0)
    return out, dropped, unused


def convert_agent(
    ckpt, arch: Optional[str] = None, family: Optional[str] = None
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an official Agent-PVT/Swin checkpoint to mmattn names and check it.

    Args:
        ckpt (dict): The loaded official file (``{'model': sd, ...}`` or a bare state dict).
        arch (str, optional): Expected variant (``'t'``, ``'tiny'``, ...); refused on mismatch.
        family (str, optional): Expected family, ``'pvt'`` or ``'swin'``; refused on mismatch.

    Returns:
        tuple: ``(state_dict, report)``; ``report`` has ``family``, ``arch``, ``attn_cfgs``
        (the backbone's ``attn_cfgs``: one entry per stage, per block for Swin), ``layout``
        (:func:`describe_layout` of it), ``agent_nums``, ``pretrain_img_size`` (+
        ``window_size`` for Swin), ``dropped``,
        ``new`` (mmattn keys left at their init: the Swin output norms) and ``num_keys``.

    Raises:
        ConversionError: Not an Agent-PVT/Swin checkpoint, a variant mismatch, unused
            official keys, missing keys or shape mismatches. Nothing partial is returned.
    """
    sd = unwrap_state_dict(ckpt)
    found = detect_family(sd)
    if family is not None and family.lower() != found:
        raise ConversionError(f'{family!r} requested but the checkpoint is Agent-{found.upper()}')
    facts = _pvt_facts(sd) if found == 'pvt' else _swin_facts(sd)
    check_arch(
        arch,
        PVT_ARCHS if found == 'pvt' else TSB_ARCHS,
        facts['arch'],
        f'Agent-{found.upper()}',
        f'Agent-{found.upper()}-{facts["arch"]}',
    )
    out, dropped, unused = _map_pvt(sd, facts) if found == 'pvt' else map_swin_keys(sd)
    expected = {k: v.shape for k, v in _build(facts).state_dict().items()}
    return out, audit_pyramid(
        out, expected, dropped, unused, facts, f'Agent-{found.upper()}-{facts["arch"]}'
    )


def convert_file(
    src: str, dst: str, arch: Optional[str] = None, family: Optional[str] = None
) -> dict:
    """Convert ``src`` and write ``{'state_dict', 'meta'}`` to ``dst`` atomically.

    Nothing is written when :func:`convert_agent` refuses.
    """
    state_dict, report = convert_agent(safe_load(src), arch, family)
    return save_converted(
        dst,
        state_dict,
        report,
        ('family', 'arch', 'attn_cfgs', 'agent_nums', 'pretrain_img_size', 'window_size'),
        source=src,
        converter='mmattn.converters.agent',
    )
