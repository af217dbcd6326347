"""Convert the official EANet segmentation checkpoint (MenghaoGuo/EANet, ``model_torch.py``)
into an mmseg ``EncoderDecoder``: mmseg ``ResNetV1c`` (deep stem of 128 channels, output stride
8, last-stage dilations (2, 8, 16)) + :class:`mmattn.seg.EAHead`.

The official training script saves ``{'net': EANet.state_dict()}`` (the DataParallel wrapper
stripped; a leftover ``module.`` prefix is removed too). Official key groups:

- ``extractor.0.{0,1,3,4,6}``: the deep stem's convs and norms -> ``backbone.stem.*``
- ``extractor.1``: the norm after the stem's third conv -> ``backbone.stem.7``
- ``extractor.{4,5,6,7}``: ``layer1..4`` -> ``backbone.layer1..4`` (same inner names)
- ``fc0.{conv,bn}`` -> ``decode_head.fc0.{conv,bn}``
- ``linu.{conv1,linear_0,linear_1,conv2.0,conv2.1}`` -> ``decode_head.ea.{conv_in,mem_k,mem_v,
  conv_out,bn}``
- ``fc1.0.{conv,bn}`` -> ``decode_head.fc1.{conv,bn}``; ``fc2`` -> ``decode_head.conv_seg``
"""

import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from mmattn.converters.common import (
    ConversionError,
    audit_key_mapping,
    save_converted,
    unwrap_state_dict,
)
from mmattn.utils.checkpoint import safe_load

_DEPTH_OF_LAYER3 = {6: 50, 23: 101, 36: 152}
_STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
_BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')

_RULES = [
    (r'^extractor\.0\.(0|1|3|4|6)\.(.+)$', r'backbone.stem.\1.\2'),
    (r'^extractor\.1\.(.+)$', r'backbone.stem.7.\1'),
    (r'^extractor\.4\.(.+)$', r'backbone.layer1.\1'),
    (r'^extractor\.5\.(.+)$', r'backbone.layer2.\1'),
    (r'^extractor\.6\.(.+)$', r'backbone.layer3.\1'),
    (r'^extractor\.7\.(.+)$', r'backbone.layer4.\1'),
    (r'^fc0\.(conv|bn)\.(.+)$', r'decode_head.fc0.\1.\2'),
    (r'^linu\.conv1\.(.+)$', r'decode_head.ea.conv_in.\1'),
    (r'^linu\.linear_0\.(.+)$', r'decode_head.ea.mem_k.\1'),
    (r'^linu\.linear_1\.(.+)$', r'decode_head.ea.mem_v.\1'),
    (r'^linu\.conv2\.0\.(.+)$', r'decode_head.ea.conv_out.\1'),
    (r'^linu\.conv2\.1\.(.+)$', r'decode_head.ea.bn.\1'),
    (r'^fc1\.0\.(conv|bn)\.(.+)$', r'decode_head.fc1.\1.\2'),
    (r'^fc2\.(.+)$', r'decode_head.conv_seg.\1'),
]


def expected_keys(depth: int) -> List[str]:
    """Every key the converted ``EncoderDecoder`` must have (backbone + decode head).

    Args:
        depth (int): ResNet depth (50, 101 or 152).

    Returns:
        list[str]: mmattn/mmseg key names.
    """
    keys = []
    bn = lambda prefix: [f'{prefix}.{n}' for n in _BN]  # noqa: E731
    for i in (0, 3, 6):
        keys += [f'backbone.stem.{i}.weight'] + bn(f'backbone.stem.{i + 1}')
    for stage, blocks in enumerate(_STAGE_BLOCKS[depth], start=1):
        for b in range(blocks):
            p = f'backbone.layer{stage}.{b}'
            for j in (1, 2, 3):
                keys += [f'{p}.conv{j}.weight'] + bn(f'{p}.bn{j}')
            if b == 0:
                keys += [f'{p}.downsample.0.weight'] + bn(f'{p}.downsample.1')
    h = 'decode_head'
    keys += [f'{h}.fc0.conv.weight'] + bn(f'{h}.fc0.bn')
    keys += [
        f'{h}.ea.conv_in.weight',
        f'{h}.ea.conv_in.bias',
        f'{h}.ea.mem_k.weight',
        f'{h}.ea.mem_v.weight',
        f'{h}.ea.conv_out.weight',
    ] + bn(f'{h}.ea.bn')
    keys += [f'{h}.fc1.conv.weight'] + bn(f'{h}.fc1.bn')
    keys += [f'{h}.conv_seg.weight', f'{h}.conv_seg.bias']
    return keys


def _rename(key: str):
    for pattern, repl in _RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def _official_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The state dict under ``'net'``, without DataParallel's ``module.`` prefix."""
    if not isinstance(checkpoint, dict) or 'net' not in checkpoint:
        found = list(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint)
        raise ConversionError(
            'not an official EANet checkpoint: expected a dict with a "net" '
            f'state dict (found {found})'
        )
    if not isinstance(checkpoint['net'], dict) or not checkpoint['net']:
        raise ConversionError('checkpoint["net"] is not a state dict')
    src = unwrap_state_dict(checkpoint['net'])
    if not any(k.startswith('linu.') for k in src):
        raise ConversionError(
            'no "linu.*" (external attention) keys: this is not an EANet '
            f'checkpoint (first keys: {list(src)[:5]})'
        )
    return src


def _resnet_depth(src: Dict[str, torch.Tensor], depth: Optional[int]) -> int:
    """The ResNet depth, read off the number of ``layer3`` blocks; refuse another ``depth``."""
    layer3 = {int(m.group(1)) for k in src if (m := re.match(r'^extractor\.6\.(\d+)\.', k))}
    found = _DEPTH_OF_LAYER3.get(len(layer3))
    if found is None:
        raise ConversionError(f'layer3 has {len(layer3)} blocks: not ResNet-50/101/152')
    if depth is not None and depth != found:
        raise ConversionError(f'expected a ResNet-{depth} EANet, the checkpoint is ResNet-{found}')
    return found


def _check_widths(out: Dict[str, torch.Tensor]) -> None:
    """Shapes that must agree with the official architecture (the stem, the EA memory)."""
    stem = out['backbone.stem.6.weight'].shape
    if tuple(stem[:2]) != (128, 64):
        raise ConversionError(
            f'stem conv3 has shape {tuple(stem)}; the official deep stem is 3->64->64->128'
        )
    ea = out['decode_head.ea.mem_k.weight'].shape
    if ea[1] != out['decode_head.fc0.conv.weight'].shape[0]:
        raise ConversionError(f'external-attention memory {tuple(ea)} does not match fc0')


def convert_eanet(
    checkpoint: dict, depth: Optional[int] = None
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Map an official EANet checkpoint to mmattn/mmseg names.

    Args:
        checkpoint (dict): The loaded official file, ``{'net': state_dict}``.
        depth (int, optional): Expected ResNet depth; refuse if the checkpoint has another.
            Defaults to None (read it off the checkpoint).

    Returns:
        tuple[dict, dict]: The converted state dict and a report with ``depth``,
        ``num_classes``, ``filled`` (``num_batches_tracked`` buffers absent from old SyncBN
        checkpoints, set to 0), ``ignored`` (keys knowingly dropped: none in this layout).

    Raises:
        ConversionError: Not this layout; any official key unused, any target key missing, or
            a shape that contradicts the architecture. Nothing is returned in that case.
    """
    src = _official_state_dict(checkpoint)
    out, unused = OrderedDict(), []
    for key, value in src.items():
        new = _rename(key)
        if new is None:
            unused.append(key)
        else:
            out[new] = value
    depth = _resnet_depth(src, depth)
    expected = expected_keys(depth)
    filled = [k for k in expected if k not in out and k.endswith('num_batches_tracked')]
    for key in filled:
        out[key] = torch.tensor(0, dtype=torch.long)
    audit_key_mapping(out, expected, unused, f'EANet ResNet-{depth}', target='the EANet model')
    _check_widths(out)
    ea = out['decode_head.ea.mem_k.weight'].shape
    report = dict(
        depth=depth,
        num_classes=int(out['decode_head.conv_seg.weight'].shape[0]),
        num_slots=int(ea[0]),
        filled=filled,
        ignored=[],
    )
    return out, report


def convert_file(src: str, dst: str, depth: Optional[int] = None) -> dict:
    """Load ``src`` safely, convert, and write ``{'meta', 'state_dict'}`` atomically to ``dst``.

    Nothing is written when the conversion is refused.

    Returns:
        dict: The conversion report (see :func:`convert_eanet`).
    """
    state_dict, report = convert_eanet(safe_load(src), depth)
    return save_converted(
        dst,
        state_dict,
        report,
        ('depth', 'num_classes'),
        converted_from=src,
        converter='mmattn.converters.eanet',
    )
