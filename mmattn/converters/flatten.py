"""Convert official FLatten-PVT / FLatten-PVTv2 / FLatten-Swin ImageNet checkpoints to
:class:`FLattenPVT` / :class:`FLattenPVTv2` / :class:`FLattenSwin`.

The official trainer (LeapLabTHU/FLatten-Transformer, ``utils.py``, Swin codebase) saves
``{'model': state_dict, 'optimizer': ..., 'lr_scheduler': ..., 'max_accuracy': ..., 'epoch':
..., 'config': ...}``; released files may hold only ``{'model': ...}``.

FLatten-PVT key mapping (``i`` = 1..4):

=====================================  ===========================================
official                               mmattn
=====================================  ===========================================
``patch_embed{i}.{proj,norm}.*``       ``layers.{i-1}.patch_embed.{proj,norm}.*``
``pos_embed{i}``                       ``layers.{i-1}.pos_embed``
``block{i}.{j}.*``                     ``layers.{i-1}.blocks.{j}.*`` (same names:
                                       ``attn.{q,kv,proj,dwc,scale,positional_encoding}``)
``norm.*``, ``head.*``                 dropped (classifier; ``norm`` is unused even by
                                       the official forward)
=====================================  ===========================================

FLatten-PVTv2 key mapping (``i`` = 1..4; no position embeddings, no final norm):

=======================================  =========================================
official                                 mmattn
=======================================  =========================================
``patch_embed{i}.{proj,norm}.*``         ``layers.{i-1}.patch_embed.{proj,norm}.*``
``block{i}.{j}.mlp.dwconv.dwconv.*``     ``layers.{i-1}.blocks.{j}.mlp.dwconv.*``
``block{i}.{j}.*`` (other)               ``layers.{i-1}.blocks.{j}.*``
``norm{i}.*``                            ``layers.{i-1}.norm.*`` (the after-stage norm)
``head.*``                               dropped (classifier)
=======================================  =========================================

The variant is read off the shapes: stage-1 width (32 for b0, 64 otherwise) and depths.

FLatten-Swin keeps the official names (``patch_embed.*``, ``layers.{i}.blocks.{j}.*``,
``layers.{i}.downsample.*``) except that a linear block's ``attn.qkv`` is split into
``attn.q`` (rows ``[0, C)``) and ``attn.kv`` (rows ``[C, 3C)``: ``[k; v]``). Dropped:
``head.*``, the final ``norm.*`` (classifier) and the derived buffers ``*.attn_mask`` and
``*.relative_position_index``. The dense output norms ``norm{i}.*`` are not in an ImageNet
checkpoint and keep their init (reported as ``new``).
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
    block_depths,
    check_arch,
    map_pvt_keys,
    map_swin_keys,
    pvt_variant,
    save_converted,
    swin_facts,
    unwrap_state_dict,
)
from mmattn.utils.checkpoint import safe_load

_NAMES = dict(pvt=PVT_ARCHS, pvtv2={f'b{i}': f'b{i}' for i in range(5)}, swin=TSB_ARCHS)
_LABELS = dict(pvt='FLatten-PVT', pvtv2='FLatten-PVTv2', swin='FLatten-Swin')


def _is_linear_block(sd, prefix: str) -> bool:
    return all(prefix + s in sd for s in ('dwc.weight', 'scale'))


def detect_family(sd: Dict[str, torch.Tensor]) -> str:
    """``'pvt'``, ``'pvtv2'`` or ``'swin'``; raises :class:`ConversionError` otherwise."""
    linear = any(k.endswith('.attn.dwc.weight') for k in sd) and any(
        k.endswith('.attn.scale') for k in sd
    )
    if linear and 'patch_embed1.proj.weight' in sd and 'pos_embed1' in sd:
        return 'pvt'
    if linear and 'patch_embed1.proj.weight' in sd and 'norm1.weight' in sd:
        return 'pvtv2'  # PVT v2 layout: no position embeddings, an after-stage norm{i}
    if (
        linear
        and 'patch_embed.proj.weight' in sd
        and any(k.startswith('layers.0.blocks.0.attn.') for k in sd)
    ):
        return 'swin'
    raise ConversionError(
        'not an official FLatten-PVT, FLatten-PVTv2 or FLatten-Swin checkpoint: expected '
        "focused linear attention keys ('*.attn.dwc.weight', '*.attn.scale') with "
        "'patch_embed1.proj.weight' + 'pos_embed1' (PVT), 'patch_embed1.proj.weight' + "
        "'norm1.weight' (PVTv2) or 'patch_embed.proj.weight' + 'layers.0.blocks.0.attn.*' "
        '(Swin)'
    )


def _pvt_stage_cfgs(sd) -> List[dict]:
    """The op of each PVT (v1 or v2) stage, read off its first block's keys."""
    cfgs = []
    for i in range(1, 5):
        prefix = f'block{i}.0.attn.'
        if _is_linear_block(sd, prefix):
            w = sd.get(prefix + 'sr.weight')
            cfgs.append(
                dict(
                    type='FocusedLinearAttention', sr_ratio=int(w.shape[-1]) if w is not None else 1
                )
            )
        else:  # the official softmax stages: PVT's spatial-reduction attention
            cfgs.append(dict(type='SpatialReductionAttention'))
    return cfgs


def _pvt_facts(sd) -> dict:
    from mmattn.models.backbones.flatten import FLattenPVT

    arch = pvt_variant(sd, FLattenPVT.arch_zoo, 'FLatten-PVT')
    side = math.isqrt(int(sd['pos_embed1'].shape[1]))
    return dict(family='pvt', arch=arch, attn_cfgs=_pvt_stage_cfgs(sd), pretrain_img_size=side * 4)


def _pvtv2_facts(sd) -> dict:
    from mmattn.models.backbones.flatten import FLattenPVTv2

    depths = block_depths(sd, r'block%d\.(\d+)\.', 4, 1)
    dims = int(sd['patch_embed1.proj.weight'].shape[0])
    arch = next(
        (
            name
            for name in sorted(FLattenPVTv2.arch_zoo)
            if FLattenPVTv2.arch_zoo[name]['depths'] == depths
            and FLattenPVTv2.arch_zoo[name]['embed_dims'][0] == dims
        ),
        None,
    )
    if arch is None:
        raise ConversionError(
            f'FLatten-PVTv2 checkpoint with stage-1 width {dims} and depths '
            f'{depths} matches no variant (b0 32/2-2-2-2, b1 64/2-2-2-2, '
            'b2 64/3-4-6-3, b3 64/3-4-18-3, b4 64/3-8-27-3)'
        )
    cfgs = _pvt_stage_cfgs(sd)
    img = None
    for i, cfg in enumerate(cfgs):  # the first linear stage's positional encoding
        pos = sd.get(f'block{i + 1}.0.attn.positional_encoding')
        if cfg['type'] == 'FocusedLinearAttention' and pos is not None:
            img = math.isqrt(int(pos.shape[1])) * cfg['sr_ratio'] * 4 * 2**i
            break
    return dict(family='pvtv2', arch=arch, attn_cfgs=cfgs, pretrain_img_size=img or 224)


def _swin_facts(sd) -> dict:
    from mmattn.models.backbones.flatten import FLattenSwin

    def table_side(key):  # positional_encoding: (1, h0 * w0, C) with h0 = img / 4 / 2**i
        pos = sd.get(key + 'positional_encoding')
        return None if pos is None else math.isqrt(int(pos.shape[1]))

    return swin_facts(
        sd,
        FLattenSwin.arch_zoo,
        'FLatten-Swin',
        'FocusedLinearAttention',
        lambda key: _is_linear_block(sd, key),
        table_side,
    )


def build_target(facts: dict):
    """The mmattn backbone that a checkpoint with ``facts`` converts to."""
    if facts['family'] in ('pvt', 'pvtv2'):
        from mmattn.models.backbones.flatten import FLattenPVT, FLattenPVTv2

        cls = FLattenPVT if facts['family'] == 'pvt' else FLattenPVTv2
        return cls(
            arch=facts['arch'],
            attn_cfgs=facts['attn_cfgs'],
            pretrain_img_size=facts['pretrain_img_size'],
            drop_path_rate=0.0,
        )
    from mmattn.models.backbones.flatten import FLattenSwin

    return FLattenSwin(
        arch=facts['arch'],
        attn_cfgs=facts['attn_cfgs'],
        window_size=facts['window_size'],
        pretrain_img_size=facts['pretrain_img_size'],
        drop_path_rate=0.0,
    )


def _map_pvtv2(sd) -> Tuple[dict, List[str], List[str]]:
    out, dropped, unused = OrderedDict(), [], []
    for k, v in sd.items():
        if k.startswith('head.'):
            dropped.append(k)  # classifier
            continue
        m = re.match(r'(patch_embed|block|norm)([1-4])(\..*)$', k)
        if m is None:
            unused.append(k)
            continue
        kind, i, rest = m.group(1), int(m.group(2)) - 1, m.group(3)
        if kind == 'patch_embed':
            out[f'layers.{i}.patch_embed{rest}'] = v
        elif kind == 'norm':
            out[f'layers.{i}.norm{rest}'] = v
        else:
            out[f'layers.{i}.blocks{rest.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")}'] = v
    return out, dropped, unused


def _map_swin(sd) -> Tuple[dict, List[str], List[str]]:
    def split_qkv(k, v):  # a linear block's qkv rows are [q; k; v]: q, then kv
        m = re.match(r'(layers\.\d+\.blocks\.\d+\.attn\.)qkv\.(weight|bias)$', k)
        if m is None or not _is_linear_block(sd, m.group(1)):
            return {k: v}
        c = v.shape[0] // 3
        return {f'{m.group(1)}q.{m.group(2)}': v[:c], f'{m.group(1)}kv.{m.group(2)}': v[c:]}

    return map_swin_keys(sd, split_qkv)


def convert_flatten(
    ckpt,
    arch: Optional[str] = None,
    family: Optional[str] = None,
    expected: Optional[Dict[str, torch.Size]] = None,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an official FLatten-PVT/PVTv2/Swin checkpoint to mmattn names and check it.

    Args:
        ckpt (dict): The loaded official file (``{'model': sd, ...}`` or a bare state dict).
        arch (str, optional): Expected variant (``'t'``, ``'tiny'``, ``'b0'``, ...); refused
            on mismatch.
        family (str, optional): Expected family, ``'pvt'``, ``'pvtv2'`` or ``'swin'``;
            refused on mismatch.
        expected (dict, optional): ``key -> shape`` of the target backbone; built from
            :func:`build_target` when None.

    Returns:
        tuple: ``(state_dict, report)``; ``report`` has ``family``, ``arch``, ``attn_cfgs``
        (the backbone's ``attn_cfgs``: one entry per stage, per block for Swin; the linear
        PVT stages carry their ``sr_ratio``), ``layout`` (:func:`describe_layout` of it),
        ``name`` (e.g. ``'FLatten-PVTv2-b0'``), ``pretrain_img_size`` (+ ``window_size`` for Swin),
        ``dropped``, ``new`` (mmattn keys left at their init: the Swin output norms) and
        ``num_keys``.

    Raises:
        ConversionError: Not a FLatten-PVT/PVTv2/Swin checkpoint, a variant mismatch, unused
            official keys, missing keys or shape mismatches. Nothing partial is returned.
    """
    sd = unwrap_state_dict(ckpt)
    found = detect_family(sd)
    label = _LABELS[found]
    if family is not None and family.lower() != found:
        raise ConversionError(f'{family!r} requested but the checkpoint is {label}')
    facts = dict(pvt=_pvt_facts, pvtv2=_pvtv2_facts, swin=_swin_facts)[found](sd)
    check_arch(arch, _NAMES[found], facts['arch'], label, f'{label}-{facts["arch"]}')
    map_keys = dict(
        pvt=lambda sd: map_pvt_keys(sd, r'head\.|norm\.(weight|bias)$'),
        pvtv2=_map_pvtv2,
        swin=_map_swin,
    )[found]
    out, dropped, unused = map_keys(sd)
    if expected is None:
        expected = {k: v.shape for k, v in build_target(facts).state_dict().items()}
    return out, audit_pyramid(out, expected, dropped, unused, facts, f'{label}-{facts["arch"]}')


def convert_file(
    src: str, dst: str, arch: Optional[str] = None, family: Optional[str] = None
) -> dict:
    """Convert ``src`` and write ``{'state_dict', 'meta'}`` to ``dst`` atomically.

    Nothing is written when :func:`convert_flatten` refuses.
    """
    state_dict, report = convert_flatten(safe_load(src), arch, family)
    return save_converted(
        dst,
        state_dict,
        report,
        ('family', 'arch', 'attn_cfgs', 'pretrain_img_size', 'window_size'),
        source=src,
        converter='mmattn.converters.flatten',
    )
