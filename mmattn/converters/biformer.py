"""Convert official BiFormer checkpoints (rayleizhu/BiFormer) to mmattn's ``BiFormer``.

Official ImageNet checkpoints are ``{'model': state_dict, ...}`` with the names of
``models/biformer.py``. The mapping is one-to-one except:

- dropped on purpose: the classifier ``head.*`` and the final ``norm.*`` (BatchNorm), which
  the official dense wrappers delete too;
- produced nowhere in an ImageNet checkpoint: mmattn's per-level output norms ``norm{i}.*``
  (the official wrappers' ``extra_norms``, created fresh for dense training). When the input
  holds ``extra_norms`` (a dense checkpoint's backbone), they are converted.

Anything else unknown, a missing weight or a shape mismatch refuses the conversion.
"""

import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from mmattn.converters.common import (
    TSB_ARCHS,
    ConversionError,
    audit_key_mapping,
    check_arch,
    save_converted,
    unwrap_state_dict,
)
from mmattn.utils.checkpoint import safe_load

#: (official pattern, mmattn replacement); the first match wins.
_RULES = [
    (r'^downsample_layers\.0\.0\.', 'stem.conv1.'),
    (r'^downsample_layers\.0\.1\.', 'stem.bn1.'),
    (r'^downsample_layers\.0\.3\.', 'stem.conv2.'),
    (r'^downsample_layers\.0\.4\.', 'stem.bn2.'),
    (r'^downsample_layers\.([1-9])\.0\.', lambda m: f'downsamples.{int(m[1]) - 1}.conv.'),
    (r'^downsample_layers\.([1-9])\.1\.', lambda m: f'downsamples.{int(m[1]) - 1}.bn.'),
    (r'^(stages\.\d+\.\d+)\.attn\.qkv\.qkv\.', r'\1.attn.qkv.'),  # BRA's QKVLinear
    (r'^(stages\.\d+\.\d+)\.attn\.wo\.', r'\1.attn.proj.'),
    (r'^(stages\.\d+\.\d+)\.mlp\.0\.', r'\1.mlp.fc1.'),
    (r'^(stages\.\d+\.\d+)\.mlp\.3\.', r'\1.mlp.fc2.'),
    (r'^(stages\.\d+\.\d+)\.(pos_embed|norm1|norm2|attn\.qkv|attn\.proj|attn\.lepe)\.', r'\1.\2.'),
    (r'^extra_norms\.(\d)\.', r'norm\1.'),
]
_DROPPED = re.compile(r'^(head|norm|pre_logits)\.')


def _official_state_dict(ckpt) -> Dict[str, torch.Tensor]:
    sd = unwrap_state_dict(ckpt, prefixes=('backbone.', 'module.'))
    if 'downsample_layers.0.0.weight' not in sd or not any(
        k.endswith('attn.lepe.weight') for k in sd
    ):
        raise ConversionError(
            'not an official BiFormer checkpoint: no '
            '"downsample_layers.0.0.weight" / "stages.*.attn.lepe" weights'
        )
    return sd


def detect_arch(sd: Dict[str, torch.Tensor]) -> str:
    """The BiFormer variant ('tiny', 'small', 'base') of an official state dict."""
    width = sd['downsample_layers.0.3.weight'].shape[0]
    depth0 = len({k.split('.')[2] for k in sd if k.startswith('stages.0.')})
    for name, (w, d) in dict(tiny=(64, 2), small=(64, 4), base=(96, 4)).items():
        if (width, depth0) == (w, d):
            return name
    raise ConversionError(
        f'unknown BiFormer variant: stem width {width}, {depth0} blocks in stage 1'
    )


def _rename(key: str) -> Optional[str]:
    for pattern, repl in _RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    return None


def expected_state_dict_shapes(arch: str) -> Dict[str, Tuple[int, ...]]:
    """Names and shapes of mmattn ``BiFormer(arch)``'s state dict (built on the meta device)."""
    from mmattn.models.backbones.biformer import BiFormer

    with torch.device('meta'):
        model = BiFormer(arch=arch)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def convert_biformer(ckpt, arch: Optional[str] = None) -> Tuple[OrderedDict, dict]:
    """Convert an official BiFormer checkpoint (or its state dict) to mmattn names.

    Args:
        ckpt (dict): ``{'model': sd}`` (ImageNet release), ``{'state_dict': sd}`` or ``sd``.
        arch (str, optional): Expected variant; a different one refuses. Defaults to the
            detected variant.

    Returns:
        tuple[OrderedDict, dict]: The converted state dict and a report with ``arch``,
        ``dropped`` (official keys knowingly left out) and ``missing`` (mmattn keys not in
        the checkpoint: the output norms, initialised fresh).

    Raises:
        ConversionError: Foreign checkpoint, variant mismatch, unknown keys, missing weights
            (other than the output norms) or shape mismatches.
    """
    sd = _official_state_dict(ckpt)
    found = detect_arch(sd)
    check_arch(arch, TSB_ARCHS, found, 'BiFormer', f'BiFormer-{found}')
    expected = expected_state_dict_shapes(found)
    out, dropped, unused = OrderedDict(), [], []
    for key, value in sd.items():
        new = _rename(key)
        if new is not None:
            out[new] = value
        else:
            (dropped if _DROPPED.match(key) else unused).append(key)
    missing = [k for k in expected if k not in out]
    audit_key_mapping(
        out,
        expected,
        unused,
        f'BiFormer-{found}',
        target='BiFormer',
        allowed_missing=tuple(k for k in missing if re.match(r'^norm\d\.', k)),
    )
    return out, dict(arch=found, dropped=dropped, missing=missing)


def convert_file(src: str, dst: str, arch: Optional[str] = None) -> dict:
    """Convert ``src`` and write ``{'state_dict': ..., 'meta': ...}`` to ``dst`` atomically.

    Nothing is written when the conversion is refused. Returns the report.
    """
    state_dict, report = convert_biformer(safe_load(src), arch=arch)
    return save_converted(
        dst, state_dict, report, ('arch',), converted_from=src, missing_keys=report['missing']
    )
