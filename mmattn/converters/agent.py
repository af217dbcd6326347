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
    ConversionError,
    audit_key_mapping,
    block_depths,
    describe_layout,
    unwrap_state_dict,
)
from mmattn.utils.checkpoint import safe_load, save_atomic

_PVT_NAMES = {'t': 'tiny', 's': 'small', 'm': 'medium', 'l': 'large'}
_SWIN_NAMES = {'t': 'tiny', 's': 'small', 'b': 'base'}


def detect_family(sd: Dict[str, torch.Tensor]) -> str:
    """``'pvt'`` or ``'swin'``; raises :class:`ConversionError` for anything else."""
    if 'patch_embed1.proj.weight' in sd and 'pos_embed1' in sd and any(
            k.startswith('block1.0.attn.') for k in sd):
        return 'pvt'
    if 'patch_embed.proj.weight' in sd and any(k.startswith('layers.0.blocks.0.attn.') for k in sd):
        return 'swin'
    raise ConversionError(
        'not an official Agent-PVT or Agent-Swin checkpoint: expected the keys '
        "'patch_embed1.proj.weight' + 'pos_embed1' (PVT) or 'patch_embed.proj.weight' + "
        "'layers.0.blocks.0.attn.*' (Swin)")


def _pvt_facts(sd) -> dict:
    from mmattn.models.backbones.pvt import AgentPVT
    depths = block_depths(sd, r'block%d\.(\d+)\.', 4, 1)
    arch = next((name for name in ('tiny', 'small', 'medium', 'large')
                 if AgentPVT.arch_zoo[name]['depths'] == depths), None)
    if arch is None:
        raise ConversionError(f'Agent-PVT checkpoint with depths {depths} matches no variant '
                              '(T 2222, S 3463, M 3-4-18-3, L 3-8-27-3)')
    cfgs, agent_nums = [], []
    for i in range(1, 5):
        if f'block{i}.0.attn.an_bias' in sd:
            cfgs.append(dict(type='AgentAttention'))
            agent_nums.append(int(sd[f'block{i}.0.attn.an_bias'].shape[1]))
        else:  # the official 'B' stages: PVT's spatial-reduction attention
            cfgs.append(dict(type='SpatialReductionAttention'))
            agent_nums.append(49)
    side = math.isqrt(int(sd['pos_embed1'].shape[1]))
    return dict(family='pvt', arch=arch, attn_cfgs=cfgs, agent_nums=agent_nums,
                pretrain_img_size=side * 4)


def _swin_facts(sd) -> dict:
    from mmattn.models.backbones.swin import AgentSwin
    depths = block_depths(sd, r'layers\.%d\.blocks\.(\d+)\.', 4, 0)
    dims = int(sd['patch_embed.proj.weight'].shape[0])
    arch = next((name for name in ('tiny', 'small', 'base')
                 if AgentSwin.arch_zoo[name]['depths'] == depths
                 and AgentSwin.arch_zoo[name]['embed_dims'] == dims), None)
    if arch is None:
        raise ConversionError(f'Agent-Swin checkpoint with embed dim {dims} and depths {depths} '
                              'matches no variant (T 96/2262, S 96/2-2-18-2, B 128/2-2-18-2)')
    cfgs, agent_nums, window, img = [], [], 7, None
    for i, depth in enumerate(depths):
        stage = []
        for j in range(depth):
            key = f'layers.{i}.blocks.{j}.attn.'
            if key + 'an_bias' in sd:
                stage.append(dict(type='AgentAttention'))
                if img is None:  # ah_bias: (1, heads, agents, h0, 1) with h0 = img / 4 / 2**i
                    img = int(sd[key + 'ah_bias'].shape[3]) * 4 * 2**i
            else:  # the official 'B' blocks: Swin's shifted-window attention
                stage.append(dict(type='ShiftWindowMSA'))
                table = sd.get(key + 'relative_position_bias_table')
                if table is not None:
                    window = (math.isqrt(int(table.shape[0])) + 1) // 2
        cfgs.append(stage)
        an = sd.get(f'layers.{i}.blocks.0.attn.an_bias')
        agent_nums.append(int(an.shape[1]) if an is not None else 49)
    return dict(family='swin', arch=arch, attn_cfgs=cfgs, agent_nums=agent_nums,
                pretrain_img_size=img or 224, window_size=window)


def _build(facts: dict):
    if facts['family'] == 'pvt':
        from mmattn.models.backbones.pvt import AgentPVT
        return AgentPVT(arch=facts['arch'], attn_cfgs=facts['attn_cfgs'],
                        agent_nums=facts['agent_nums'],
                        pretrain_img_size=facts['pretrain_img_size'], drop_path_rate=0.)
    from mmattn.models.backbones.swin import AgentSwin
    return AgentSwin(arch=facts['arch'], attn_cfgs=facts['attn_cfgs'],
                     agent_nums=facts['agent_nums'], window_size=facts['window_size'],
                     pretrain_img_size=facts['pretrain_img_size'], drop_path_rate=0.)


def _map_pvt(sd, facts) -> Tuple[dict, List[str], List[str]]:
    out, dropped, unused = OrderedDict(), [], []
    for k, v in sd.items():
        if k.startswith('head.'):
            dropped.append(k)  # ImageNet classifier
            continue
        m = re.match(r'(patch_embed|pos_embed|block)([1-4])(.*)$', k)
        if m is None:
            unused.append(k)
            continue
        kind, i, rest = m.group(1), int(m.group(2)) - 1, m.group(3)
        if kind == 'patch_embed':
            out[f'layers.{i}.patch_embed{rest}'] = v
        elif kind == 'pos_embed':
            if rest:
                unused.append(k)
            else:
                out[f'layers.{i}.pos_embed'] = v
        else:
            mb = re.match(r'\.(\d+)\.attn\.(q|kv)\.(weight|bias)$', rest)
            if mb and facts['attn_cfgs'][i]['type'] == 'AgentAttention':
                j, part, what = mb.groups()
                if part == 'q':
                    kv = sd.get(f'block{i + 1}.{j}.attn.kv.{what}')
                    if kv is None:
                        unused.append(k)
                    else:
                        out[f'layers.{i}.blocks.{j}.attn.qkv.{what}'] = torch.cat([v, kv], 0)
                elif f'block{i + 1}.{j}.attn.q.{what}' not in sd:
                    unused.append(k)
                continue
            out[f'layers.{i}.blocks{rest}'] = v
    return out, dropped, unused


def _map_swin(sd) -> Tuple[dict, List[str], List[str]]:
    out, dropped, unused = OrderedDict(), [], []
    for k, v in sd.items():
        if k.startswith('head.') or re.match(r'norm\.(weight|bias)$', k):
            dropped.append(k)  # classifier head and its pre-pool norm
        elif k.endswith('.attn_mask') or k.endswith('.relative_position_index'):
            dropped.append(k)  # buffers recomputed from the window/shift at run time
        elif k.startswith('patch_embed.') or k.startswith('layers.'):
            out[k] = v
        else:
            unused.append(k)
    return out, dropped, unused


def convert_agent(ckpt, arch: Optional[str] = None, family: Optional[str] = None
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
    if arch is not None:
        names = _PVT_NAMES if found == 'pvt' else _SWIN_NAMES
        wanted = names.get(arch.lower(), arch.lower())
        if wanted not in names.values():
            raise ConversionError(f'unknown arch {arch!r} for Agent-{found.upper()}; choose from '
                                  f'{sorted(names) + sorted(names.values())}')
        if wanted != facts['arch']:
            raise ConversionError(f'--arch {arch!r} requested but the checkpoint is '
                                  f'Agent-{found.upper()}-{facts["arch"]}')
    out, dropped, unused = _map_pvt(sd, facts) if found == 'pvt' else _map_swin(sd)
    expected = _build(facts).state_dict()
    new = [k for k in expected if re.match(r'norm\d+\.', k)] if found == 'swin' else []
    audit_key_mapping(out, {k: v.shape for k, v in expected.items()}, unused,
                      f'Agent-{found.upper()}-{facts["arch"]}', allowed_missing=tuple(new))
    report = dict(facts, layout=describe_layout(facts['attn_cfgs']), dropped=dropped, new=new,
                  num_keys=len(out))
    return out, report


def convert_file(src: str, dst: str, arch: Optional[str] = None,
                 family: Optional[str] = None) -> dict:
    """Convert ``src`` and write ``{'state_dict', 'meta'}`` to ``dst`` atomically.

    Nothing is written when :func:`convert_agent` refuses.
    """
    ckpt = safe_load(src)
    state_dict, report = convert_agent(ckpt, arch, family)
    meta = {k: report[k] for k in ('family', 'arch', 'attn_cfgs', 'agent_nums',
                                   'pretrain_img_size', 'window_size') if k in report}
    save_atomic(dict(state_dict=state_dict,
                     meta=dict(meta, source=src, converter='mmattn.converters.agent')), dst)
    return report
