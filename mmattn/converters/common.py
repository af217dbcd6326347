"""What every official-checkpoint converter shares."""

import argparse
import math
import re
import sys
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch

from mmattn.utils.checkpoint import UnsafeCheckpointError, save_atomic

#: ``--arch`` aliases: PVT's variants, and those of Swin, BiFormer and Shunted.
PVT_ARCHS = {'t': 'tiny', 's': 'small', 'm': 'medium', 'l': 'large'}
TSB_ARCHS = {'t': 'tiny', 's': 'small', 'b': 'base'}


class ConversionError(ValueError):
    """The input is not a (complete) official checkpoint of the family or variant asked for.

    Converters raise it before writing anything; the CLIs print it as one line.
    """


def unwrap_state_dict(ckpt, prefixes: Tuple[str, ...] = ('module.',)) -> Dict[str, torch.Tensor]:
    """The model state dict of an official checkpoint.

    Accepts the trainer layout (``{'model': sd, ...}``), ``{'state_dict': sd}`` or a bare state
    dict, and strips the first of ``prefixes`` (DDP's ``module.``) a key starts with. Every
    entry must be a tensor.
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
        prefix = next((p for p in prefixes if k.startswith(p)), '')
        sd[k[len(prefix) :]] = v
    return sd


def block_depths(sd: Dict[str, torch.Tensor], pattern: str, num: int, offset: int) -> List[int]:
    """Blocks per stage, read off the keys: ``pattern % stage`` must capture the block index."""
    out = []
    for i in range(num):
        idx = {int(m.group(1)) for k in sd for m in [re.match(pattern % (i + offset), k)] if m}
        out.append(max(idx) + 1 if idx else 0)
    return out


def audit_key_mapping(
    converted: Dict[str, torch.Tensor],
    expected_shapes: Union[Mapping[str, tuple], Iterable[str]],
    unused: List[str],
    label: str,
    target: str = 'the mmattn backbone',
    allowed_missing: Tuple[str, ...] = (),
) -> None:
    """Refuse a conversion that is not a complete, exact mapping onto the target model.

    Args:
        converted: The converted state dict.
        expected_shapes: Key -> shape of the target model's state dict, or only its keys
            (then shapes are not compared).
        unused: Official keys that mapped to nothing (and were not knowingly dropped).
        label: The variant, for the message (e.g. ``'Agent-PVT-tiny'``).
        target: How to name the target model in the message.
        allowed_missing: Target keys that start fresh (e.g. dense output norms).

    Raises:
        ConversionError: Listing every kind of problem found, at most 10 keys of each.
    """
    if not isinstance(expected_shapes, Mapping):
        expected_shapes = dict.fromkeys(expected_shapes)
    missing = [k for k in expected_shapes if k not in converted and k not in allowed_missing]
    extra = [k for k in converted if k not in expected_shapes]
    shapes = [
        f'{k}: {tuple(converted[k].shape)} vs {tuple(s)}'
        for k, s in expected_shapes.items()
        if s is not None and k in converted and tuple(converted[k].shape) != tuple(s)
    ]
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


def check_arch(
    arch: Optional[str], aliases: Dict[str, str], found: str, family: str, checkpoint: str
) -> None:
    """Refuse an ``arch`` (a name or an alias in ``aliases``; None accepts) that names no variant
    of ``family`` or not the ``found`` one; ``checkpoint`` names the found one (``'Agent-PVT-t'``).
    """
    if arch is None:
        return
    names = set(aliases.values())
    wanted = aliases.get(arch.lower(), arch.lower())
    if wanted not in names:
        raise ConversionError(
            f'unknown arch {arch!r} for {family}; choose from {sorted(set(aliases) | names)}'
        )
    if wanted != found:
        raise ConversionError(f'--arch {arch!r} requested but the checkpoint is {checkpoint}')


def pvt_variant(sd: Dict[str, torch.Tensor], arch_zoo: dict, family: str) -> str:
    """The PVT variant (tiny/small/medium/large) whose depths the official ``block{i}.{j}``
    keys show."""
    depths = block_depths(sd, r'block%d\.(\d+)\.', 4, 1)
    arch = next(
        (
            name
            for name in ('tiny', 'small', 'medium', 'large')
            if arch_zoo[name]['depths'] == depths
        ),
        None,
    )
    if arch is None:
        raise ConversionError(
            f'{family} checkpoint with depths {depths} matches no variant '
            '(T 2-2-2-2, S 3-4-6-3, M 3-4-18-3, L 3-8-27-3)'
        )
    return arch


def map_pvt_keys(
    sd: Dict[str, torch.Tensor], dropped_pattern: str = r'head\.'
) -> Tuple[dict, List[str], List[str]]:
    """Official PVT names -> mmattn's: ``patch_embed{i}``/``pos_embed{i}``/``block{i}`` become
    ``layers.{i-1}.patch_embed``/``.pos_embed``/``.blocks``; keys matching ``dropped_pattern``
    are dropped, any other key is unused. Returns ``(out, dropped, unused)``."""
    out, dropped, unused = OrderedDict(), [], []
    for k, v in sd.items():
        if re.match(dropped_pattern, k):
            dropped.append(k)  # classifier (and its norm)
            continue
        m = re.match(r'(patch_embed|pos_embed|block)([1-4])(.*)$', k)
        if m is None or (m.group(1) == 'pos_embed' and m.group(3)):
            unused.append(k)
            continue
        kind, i, rest = m.group(1), int(m.group(2)) - 1, m.group(3)
        out[f'layers.{i}.{"blocks" if kind == "block" else kind}{rest}'] = v
    return out, dropped, unused


def swin_facts(
    sd: Dict[str, torch.Tensor],
    arch_zoo: dict,
    family: str,
    op_type: str,
    is_op_block: Callable[[str], bool],
    table_side: Callable[[str], Optional[int]],
) -> dict:
    """Variant, per-block ``attn_cfgs``, window and pre-training size of an official Swin-layout
    checkpoint whose blocks run ``op_type`` where ``is_op_block(attn_prefix)``, else Swin's
    shifted-window attention. ``table_side(attn_prefix)``: the side of an op block's position
    table at its stage's resolution, or None (pre-training size = ``side * 4 * 2**stage``).
    """
    depths = block_depths(sd, r'layers\.%d\.blocks\.(\d+)\.', 4, 0)
    dims = int(sd['patch_embed.proj.weight'].shape[0])
    arch = next(
        (
            name
            for name in ('tiny', 'small', 'base')
            if arch_zoo[name]['depths'] == depths and arch_zoo[name]['embed_dims'] == dims
        ),
        None,
    )
    if arch is None:
        raise ConversionError(
            f'{family} checkpoint with embed dim {dims} and depths {depths} '
            'matches no variant (T 96/2-2-6-2, S 96/2-2-18-2, B 128/2-2-18-2)'
        )
    cfgs, window, img = [], 7, None
    for i, depth in enumerate(depths):
        stage = []
        for j in range(depth):
            key = f'layers.{i}.blocks.{j}.attn.'
            if is_op_block(key):
                stage.append(dict(type=op_type))
                side = table_side(key)
                if img is None and side is not None:
                    img = side * 4 * 2**i
            else:  # the official softmax ('B') blocks: Swin's shifted-window attention
                stage.append(dict(type='ShiftWindowMSA'))
                table = sd.get(key + 'relative_position_bias_table')
                if table is not None:
                    window = (math.isqrt(int(table.shape[0])) + 1) // 2
        cfgs.append(stage)
    return dict(
        family='swin', arch=arch, attn_cfgs=cfgs, window_size=window, pretrain_img_size=img or 224
    )


def map_swin_keys(
    sd: Dict[str, torch.Tensor], rename: Optional[Callable[[str, torch.Tensor], dict]] = None
) -> Tuple[dict, List[str], List[str]]:
    """Official Swin names are mmattn's: keep ``patch_embed.*``/``layers.*`` (through
    ``rename(key, value) -> {key: value}`` if given), drop the classifier, its norm and the
    derived buffers. Returns ``(out, dropped, unused)``."""
    out, dropped, unused = OrderedDict(), [], []
    for k, v in sd.items():
        if k.startswith('head.') or re.match(r'norm\.(weight|bias)$', k):
            dropped.append(k)  # classifier head and its pre-pool norm
        elif k.endswith(('.attn_mask', '.relative_position_index')):
            dropped.append(k)  # buffers recomputed from the window/shift at run time
        elif k.startswith(('patch_embed.', 'layers.')):
            out.update(rename(k, v) if rename else {k: v})
        else:
            unused.append(k)
    return out, dropped, unused


def audit_pyramid(
    out: dict,
    expected_shapes: Dict[str, tuple],
    dropped: List[str],
    unused: List[str],
    facts: dict,
    name: str,
) -> dict:
    """Audit an Agent/FLatten conversion (a Swin's dense output norms ``norm{i}`` are not in an
    ImageNet checkpoint: they start fresh, reported as ``new``) and return its report."""
    new = (
        [k for k in expected_shapes if re.match(r'norm\d+\.', k)]
        if facts['family'] == 'swin'
        else []
    )
    audit_key_mapping(out, expected_shapes, unused, name, allowed_missing=tuple(new))
    return dict(
        facts,
        layout=describe_layout(facts['attn_cfgs']),
        dropped=dropped,
        new=new,
        num_keys=len(out),
        name=name,
    )


def save_converted(
    dst: str, state_dict: dict, report: dict, report_keys: Tuple[str, ...], **meta
) -> dict:
    """Write ``{'state_dict', 'meta'}`` to ``dst`` atomically, ``meta`` holding ``meta`` and the
    report's ``report_keys``; return the report."""
    meta.update({k: report[k] for k in report_keys if k in report})
    save_atomic(dict(state_dict=state_dict, meta=meta), dst)
    return report


def converter_main(
    doc: str,
    convert_file: Callable[..., dict],
    options: Dict[str, dict],
    summary: Callable[[dict, str], str],
    argv=None,
) -> int:
    """The command line of ``tools/model_converters/*2mmattn.py``: ``SRC DST`` and the family's
    ``options`` (flag -> ``add_argument`` keywords; their dests are ``convert_file`` keywords).
    Prints ``summary(report, dst)`` and returns 0, or one ``error:`` line and 2 on a refusal.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth or .safetensors)')
    for flag, kwargs in options.items():
        parser.add_argument(flag, **kwargs)
    args = vars(parser.parse_args(argv))
    src, dst = args.pop('src'), args.pop('dst')
    try:
        report = convert_file(src, dst, **args)
    except (ConversionError, FileNotFoundError, UnsafeCheckpointError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(summary(report, dst))
    return 0
