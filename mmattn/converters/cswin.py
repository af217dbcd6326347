"""Convert official CSWin-family ImageNet checkpoints to :class:`AgentCSWin`,
:class:`FLattenCSWin` or :class:`CSWin`.

Sources: LeapLabTHU/Agent-Attention (``agent_transformer/models/agent_cswin.py``; its trainer
saves ``{'model': state_dict, 'optimizer': ..., 'epoch': ..., ...}``), LeapLabTHU/
FLatten-Transformer (``models/flatten_cswin.py``, same layout) and microsoft/CSWin-Transformer
(``models/cswin.py``; its timm trainer saves ``{'state_dict': ..., 'state_dict_ema': ...}``,
of which ``state_dict`` is taken, as the official dense loader does).

Key mapping (``i`` = 1..4, ``P`` = ``stages.{i-1}.blocks.{j}``):

==============================================  ============================================
official                                        mmattn
==============================================  ============================================
``stage1_conv_embed.0.*`` / ``.2.*``            ``patch_embed.proj.*`` / ``patch_embed.norm.*``
``merge{m}.conv.*`` / ``merge{m}.norm.*``        ``stages.{m}.merge.proj.*`` / ``.merge.norm.*``
``stage{i}.{j}.{norm1,norm2,mlp}.*``            ``P.{norm1,norm2,mlp}.*``
``stage{i}.{j}.qkv.*``, ``.proj.*``             ``P.attn.qkv.*``, ``P.attn.proj.*`` (linear
                                                blocks: ``qkv`` rows ``[:C]`` -> ``attn.q``,
                                                ``[C:]`` -> ``attn.kv``)
``stage{i}.{j}.attns.0.get_v.*``                agent blocks ``P.attn.dwc.*``; linear and
(+ ``attns.1.get_v.*``)                         CSWin blocks ``P.attn.lepe.*`` (CSWin stripe
                                                blocks: both halves concatenated, 0 then 1)
``stage{i}.{j}.attns.0.<param>``                ``P.attn.<param>`` (agent biases; FLatten
                                                ``scale``, ``positional_encoding``, ``dwc``)
``norm.*``, ``head.*``                          dropped (classifier)
==============================================  ============================================

The dense output norms ``norm{i}.*`` are not in an ImageNet checkpoint; they keep their init
(as in the official dense CSWin, which loads ImageNet weights with ``strict=False``).
Stripe widths carry no parameters: the official 1-2-7-7 (the arch default) is assumed.
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

__all__ = ['detect_family', 'read_facts', 'build_target', 'convert_cswin', 'convert_file']

_NAMES = {'t': 'tiny', 's': 'small', 'b': 'base'}
_CLASSES = {'agent': 'AgentCSWin', 'flatten': 'FLattenCSWin', 'cswin': 'CSWin'}
_LABELS = {'agent': 'Agent-CSWin', 'flatten': 'FLatten-CSWin', 'cswin': 'CSWin'}


def _cls(family: str):
    from mmattn.models.backbones import cswin

    return getattr(cswin, _CLASSES[family])


def detect_family(sd: Dict[str, torch.Tensor]) -> str:
    """``'agent'``, ``'flatten'`` or ``'cswin'``; :class:`ConversionError` for anything else."""
    if 'stage1_conv_embed.0.weight' not in sd or not any(k.startswith('stage1.0.') for k in sd):
        raise ConversionError(
            'not an official CSWin-family checkpoint: expected the keys '
            "'stage1_conv_embed.0.weight' and 'stage1.0.*' (Agent-CSWin, FLatten-CSWin or "
            'CSWin ImageNet weights)'
        )
    if any(k.endswith('.attns.0.an_bias') for k in sd):
        return 'agent'
    if any(k.endswith('.attns.0.positional_encoding') for k in sd):
        return 'flatten'
    return 'cswin'


def _block_kind(sd, i: int, j: int) -> str:
    pre = f'stage{i}.{j}.attns.0.'
    if pre + 'an_bias' in sd:
        return 'agent'
    if pre + 'positional_encoding' in sd:
        return 'linear'
    return 'cswin'


def read_facts(sd: Dict[str, torch.Tensor]) -> dict:
    """Family, arch, ``attn_cfgs``, agent numbers and pretraining size, read off the keys."""
    family = detect_family(sd)
    cls = _cls(family)
    depths = block_depths(sd, r'stage%d\.(\d+)\.', 4, 1)
    dims = int(sd['stage1_conv_embed.0.weight'].shape[0])
    arch = next(
        (
            name
            for name in ('tiny', 'small', 'base')
            if cls.arch_zoo[name]['depths'] == depths and cls.arch_zoo[name]['embed_dims'] == dims
        ),
        None,
    )
    if arch is None:
        table = ', '.join(
            f'{n[0].upper()} {cls.arch_zoo[n]["embed_dims"]}/'
            f'{"-".join(map(str, cls.arch_zoo[n]["depths"]))}'
            for n in ('tiny', 'small', 'base')
        )
        raise ConversionError(
            f'{_LABELS[family]} checkpoint with embed dim {dims} and depths '
            f'{depths} matches no variant ({table})'
        )
    cfgs, agent_nums, img = [], [], None
    for i, depth in enumerate(depths, 1):
        stage = []
        for j in range(depth):
            kind = _block_kind(sd, i, j)
            pre = f'stage{i}.{j}.attns.0.'
            if kind == 'agent':
                stage.append(dict(type='AgentAttention'))
                # ah_bias: (1, heads, agents, h0, 1), h0 = img / 4 / 2**(i-1)
                img = img or int(sd[pre + 'ah_bias'].shape[3]) * 2 ** (i + 1)
            elif kind == 'linear':
                stage.append(
                    dict(
                        type='FocusedLinearAttention',
                        lepe_kernel_size=3,
                        kernel_size=int(sd[pre + 'dwc.weight'].shape[-1]),
                    )
                )
                side = math.isqrt(int(sd[pre + 'positional_encoding'].shape[1]))
                img = img or side * 2 ** (i + 1)
            else:
                stage.append(dict(type='CSWinAttention'))
        cfgs.append(stage[0] if all(c == stage[0] for c in stage) else stage)
        an = sd.get(f'stage{i}.0.attns.0.an_bias')
        agent_nums.append(int(an.shape[1]) if an is not None else 49)
    facts = dict(family=family, arch=arch, attn_cfgs=cfgs, pretrain_img_size=img or 224)
    if family == 'agent':
        facts['agent_nums'] = agent_nums
    return facts


def build_target(facts: dict):
    """The mmattn backbone that a checkpoint with ``facts`` converts to."""
    kwargs = dict(
        arch=facts['arch'],
        attn_cfgs=facts['attn_cfgs'],
        pretrain_img_size=facts['pretrain_img_size'],
        drop_path_rate=0.0,
    )
    if facts['family'] == 'agent':
        kwargs['agent_nums'] = facts['agent_nums']
    return _cls(facts['family'])(**kwargs)


def _map(sd, facts) -> Tuple[dict, List[str], List[str]]:
    out, dropped, unused = OrderedDict(), [], []
    consumed = set()
    for k, v in sd.items():
        if k in consumed:
            continue
        if k.startswith('head.') or re.match(r'norm\.(weight|bias)$', k):
            dropped.append(k)  # classifier and its pre-pool norm
            continue
        m = re.match(r'stage1_conv_embed\.([02])\.(weight|bias)$', k)
        if m:
            out[f'patch_embed.{"proj" if m.group(1) == "0" else "norm"}.{m.group(2)}'] = v
            continue
        m = re.match(r'merge([1-3])\.(conv|norm)\.(weight|bias)$', k)
        if m:
            part = 'proj' if m.group(2) == 'conv' else 'norm'
            out[f'stages.{m.group(1)}.merge.{part}.{m.group(3)}'] = v
            continue
        m = re.match(r'stage([1-4])\.(\d+)\.(.+)$', k)
        if m is None:
            unused.append(k)
            continue
        i, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        pre = f'stages.{i - 1}.blocks.{j}.'
        kind = _block_kind(sd, i, j)
        if re.match(r'(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$', rest):
            out[pre + rest] = v
        elif re.match(r'proj\.(weight|bias)$', rest):
            out[pre + 'attn.' + rest] = v
        elif re.match(r'qkv\.(weight|bias)$', rest):
            what = rest.split('.')[1]
            if kind == 'linear':
                c = v.shape[0] // 3
                out[pre + f'attn.q.{what}'], out[pre + f'attn.kv.{what}'] = v[:c], v[c:]
            else:
                out[pre + f'attn.qkv.{what}'] = v
        elif re.match(r'attns\.[01]\.get_v\.(weight|bias)$', rest):
            what = rest.split('.')[-1]
            if kind == 'agent':
                if rest.startswith('attns.1'):
                    unused.append(k)
                else:
                    out[pre + f'attn.dwc.{what}'] = v
                continue
            other = f'stage{i}.{j}.attns.1.get_v.{what}'
            if rest.startswith('attns.0') and other in sd:
                out[pre + f'attn.lepe.{what}'] = torch.cat([v, sd[other]], 0)
                consumed.add(other)
            elif rest.startswith('attns.0'):
                out[pre + f'attn.lepe.{what}'] = v
            else:  # attns.1 without attns.0
                unused.append(k)
        elif rest.startswith('attns.0.') and kind != 'cswin':
            out[pre + 'attn.' + rest[len('attns.0.') :]] = v
        else:
            unused.append(k)
    return out, dropped, unused


def convert_cswin(
    ckpt,
    arch: Optional[str] = None,
    family: Optional[str] = None,
    expected: Optional[Dict[str, torch.Size]] = None,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an official Agent-CSWin / FLatten-CSWin / CSWin checkpoint to mmattn names.

    Args:
        ckpt (dict): The loaded official file (``{'model': sd, ...}`` or a bare state dict).
        arch (str, optional): Expected variant (``'t'``, ``'tiny'``, ...); refused on mismatch.
        family (str, optional): Expected family, ``'agent'``, ``'flatten'`` or ``'cswin'``;
            refused on mismatch.
        expected (dict, optional): ``key -> shape`` of the target backbone; built from
            :func:`build_target` when None.

    Returns:
        tuple: ``(state_dict, report)``; ``report`` has ``family``, ``arch``, ``attn_cfgs``,
        ``layout``, ``pretrain_img_size`` (+ ``agent_nums``), ``dropped``, ``new`` (the output
        norms, left at init) and ``num_keys``.

    Raises:
        ConversionError: Not a CSWin-family checkpoint, a variant mismatch, unused official
            keys, missing keys or shape mismatches. Nothing partial is returned.
    """
    if (
        isinstance(ckpt, dict)
        and 'state_dict_ema' in ckpt
        and not {'model', 'state_dict'} & set(ckpt)
    ):
        # an EMA-only file: the official dense loader's third choice, after 'state_dict'
        # (segmentation/mmcv_custom/checkpoint.py)
        ckpt = ckpt['state_dict_ema']
    sd = unwrap_state_dict(ckpt)
    facts = read_facts(sd)
    found = facts['family']
    if family is not None and family.lower() != found:
        raise ConversionError(f'{family!r} requested but the checkpoint is {_LABELS[found]}')
    if arch is not None:
        wanted = _NAMES.get(arch.lower(), arch.lower())
        if wanted not in _NAMES.values():
            raise ConversionError(
                f'unknown arch {arch!r} for {_LABELS[found]}; choose from '
                f'{sorted(_NAMES) + sorted(_NAMES.values())}'
            )
        if wanted != facts['arch']:
            raise ConversionError(
                f'--arch {arch!r} requested but the checkpoint is {_LABELS[found]}-{facts["arch"]}'
            )
    out, dropped, unused = _map(sd, facts)
    if expected is None:
        expected = {k: v.shape for k, v in build_target(facts).state_dict().items()}
    new = tuple(k for k in expected if re.match(r'norm\d+\.', k))
    audit_key_mapping(
        out, expected, unused, f'{_LABELS[found]}-{facts["arch"]}', allowed_missing=new
    )
    report = dict(
        facts,
        layout=describe_layout(facts['attn_cfgs']),
        dropped=dropped,
        new=list(new),
        num_keys=len(out),
    )
    return out, report


def convert_file(
    src: str, dst: str, arch: Optional[str] = None, family: Optional[str] = None
) -> dict:
    """Convert ``src`` and write ``{'state_dict', 'meta'}`` to ``dst`` atomically.

    Nothing is written when :func:`convert_cswin` refuses.
    """
    ckpt = safe_load(src)
    state_dict, report = convert_cswin(ckpt, arch, family)
    meta = {
        k: report[k]
        for k in ('family', 'arch', 'attn_cfgs', 'agent_nums', 'pretrain_img_size')
        if k in report
    }
    save_atomic(
        dict(
            state_dict=state_dict, meta=dict(meta, source=src, converter='mmattn.converters.cswin')
        ),
        dst,
    )
    return report
