"""Every config under configs/ parses, builds under its own default scope, and its neck/head
input channels equal the channels its backbone really produces."""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.utils import import_modules_from_strings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p
)


def _registry(scope):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS


def _expected_in_channels(model):
    """The channels the model's first consumer of backbone features expects."""
    neck = getattr(model, 'neck', None)
    if neck is not None:
        first = neck[0] if isinstance(neck, torch.nn.Sequential) else neck
        return list(first.in_channels)
    head = model.decode_head
    return (
        list(head.in_channels)
        if isinstance(head.in_channels, (list, tuple))
        else [head.in_channels]
    )


PAPER_TTA_RATIOS = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def assert_recipe_tta(cfg, config):
    """``tools/test.py --tta`` finds the recipe's TTA: segmentation gets the papers' multi-scale
    + flip (ratios 0.5-1.75, flipped and not) under SegTTAModel; detection 3 scales x 2 flips,
    merged by DetTTAModel, or by mmattn.InstanceSegTTAModel when the model predicts masks."""
    assert 'tta_model' in cfg and 'tta_pipeline' in cfg, f'{config}: no tta_model/tta_pipeline'
    steps = [t for t in cfg.tta_pipeline if t['type'] == 'TestTimeAug']
    assert len(steps) == 1, config
    resize, flips = steps[0]['transforms'][:2]
    assert sorted(t['prob'] for t in flips) == [0.0, 1.0], config
    if cfg.default_scope == 'mmseg':
        assert cfg.tta_model.type == 'SegTTAModel', config
        assert [t['scale_factor'] for t in resize] == PAPER_TTA_RATIOS, config
    else:
        has_masks = (cfg.model.get('roi_head') or {}).get('mask_head') is not None
        want = 'mmattn.InstanceSegTTAModel' if has_masks else 'DetTTAModel'
        assert cfg.tta_model.type == want, config
        assert len(resize) == 3, config
    assert_own_tools_can_run(cfg, config)


def assert_own_tools_can_run(cfg, config):
    """MMDetection's / MMSegmentation's own ``tools/test.py`` (also ``mim test mmdet``) import
    only the config's ``custom_imports``: those must register every mmattn type the recipe names,
    its TTA merger included, and install the safe checkpoint loader (torch >= 2.6)."""
    from mmattn.registry import MODELS

    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    if not imports:  # a plain MMDetection / MMSegmentation baseline, no mmattn type in it
        assert 'mmattn' not in cfg.pretty_text, config
        return
    assert 'mmattn.safe_loading' in imports, config
    if cfg.tta_model.type.startswith('mmattn.'):
        module = MODELS.get(cfg.tta_model.type.split('.', 1)[1]).__module__
        assert any(module == m or module.startswith(m + '.') for m in imports), (
            f'{config}: custom_imports {imports} do not import {module} '
            f'({cfg.tta_model.type}, needed by --tta)'
        )


def test_configs_found():
    assert any('shapes' in c for c in CONFIGS)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_channels_match(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.default_scope in ('mmdet', 'mmseg'), 'configs must name their task scope'
    assert_recipe_tta(cfg, config)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = _registry(cfg.default_scope).build(cfg.model)
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 128, 128))
    channels = [f.shape[1] for f in feats]
    expected = _expected_in_channels(model)
    if getattr(model, 'neck', None) is None:
        # A decode head may consume a subset of the levels (in_index).
        index = model.decode_head.in_index
        index = list(index) if isinstance(index, (list, tuple)) else [index]
        channels = [channels[i] for i in index]
    assert channels == expected, f'{config}: backbone gives {channels}, consumer expects {expected}'
