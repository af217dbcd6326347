"""The EANet converter against the official checkpoint layout (committed key/shape fixture)."""

import json
import os.path as osp

import pytest
import torch

from mmattn.converters.eanet import ConversionError, convert_eanet, expected_keys
from mmattn.utils.checkpoint import safe_load

FIXTURE = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'eanet_r101_official_keys.json')
CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(__file__))),
    'configs',
    'external_attention',
    'eanet_r101-d8-official_4xb4-45k_voc12aug-512x512.py',
)


def _official_sd():
    """A state dict with the official names and shapes; zero-stride tensors cost no memory."""
    with open(FIXTURE) as f:
        shapes = json.load(f)
    return {
        k: torch.zeros(
            (), dtype=torch.long if k.endswith('num_batches_tracked') else torch.float32
        ).expand(s)
        for k, s in shapes.items()
    }


def test_every_key_mapped_and_matches_the_mmseg_model():
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import mmattn.seg  # noqa: F401

    register_all_modules()
    sd, report = convert_eanet({'net': _official_sd()})
    assert report['depth'] == 101 and report['num_classes'] == 21
    assert report['num_slots'] == 64 and report['filled'] == []
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    target = MODELS.build(cfg.model).state_dict()
    assert set(sd) == set(target) == set(expected_keys(101))
    for k, v in target.items():
        assert tuple(sd[k].shape) == tuple(v.shape), k


def test_module_prefix_and_missing_num_batches_tracked():
    src = {
        f'module.{k}': v for k, v in _official_sd().items() if not k.endswith('num_batches_tracked')
    }
    sd, report = convert_eanet({'net': src}, depth=101)
    assert len(report['filled']) > 0 and set(sd) == set(expected_keys(101))


@pytest.mark.parametrize(
    'mutate,match',
    [
        (lambda c: {'model': c['net']}, 'expected a dict with a "net"'),
        (
            lambda c: {'net': {k: v for k, v in c['net'].items() if not k.startswith('linu.')}},
            'not an EANet',
        ),
        (
            lambda c: {'net': {k: v for k, v in c['net'].items() if k != 'fc1.0.conv.weight'}},
            'missing',
        ),
        (lambda c: {'net': dict(c['net'], **{'extractor.8.weight': torch.zeros(1)})}, 'unused'),
    ],
)
def test_refuses_foreign_or_partial(mutate, match):
    with pytest.raises(ConversionError, match=match):
        convert_eanet(mutate({'net': _official_sd()}))


def test_refuses_depth_mismatch():
    with pytest.raises(ConversionError, match='ResNet-50'):
        convert_eanet({'net': _official_sd()}, depth=50)


def test_cli_writes_only_on_success(tmp_path, tool):
    src, bad, dst = tmp_path / 'official.pth', tmp_path / 'foreign.pth', tmp_path / 'out.pth'
    torch.save({'net': _official_sd()}, src)
    torch.save({'model': {'a': torch.zeros(1)}}, bad)
    proc = tool('model_converters/eanet2mmattn.py', bad, dst, check=False)
    assert proc.returncode == 2 and 'error' in proc.stderr and not dst.exists()
    tool('model_converters/eanet2mmattn.py', src, dst, '--depth', '101')
    out = safe_load(str(dst))
    assert out['meta']['depth'] == 101
    assert set(out['state_dict']) == set(expected_keys(101))
