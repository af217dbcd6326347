"""configs/plugins: the recipes are MMDetection's / MMSegmentation's plus the plug-ins, each has a
shapes twin, and a plug-in-equipped detector learns (the fixed-set memorisation criterion).

Building every config and checking its channels is tests/test_configs/test_all_configs.py's job;
the real-layout smoke run of the RTMDet recipe is in tests/test_tools/test_real_recipes.py.
"""

import glob
import os.path as osp

from mmengine.config import Config
from test_tools.test_train_test import (
    DET_MIN_GAIN,
    _fixed_detection_set,
    _metrics,
    _untrained_checkpoint,
)

from mmattn.utils.checkpoint import safe_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PLUGINS = osp.join(REPO, 'configs', 'plugins')
FAMILY_OPS = {
    'agent': 'AgentAttention',
    'bra': 'BiLevelRoutingAttention',
    'ea': 'MultiHeadExternalAttention',
    'flatten': 'FocusedLinearAttention',
    'shunted': 'ShuntedSelfAttention',
}
LEARN = 'configs/shapes/mask-rcnn_r50-agent_fpn_shapes.py'
LEARN_ITERS = 60


def _cfg(path):
    if path.startswith('mmdet::'):  # the config as the pip package ships it
        import mmdet

        path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path[len('mmdet::') :])
    return Config.fromfile(path if osp.isabs(path) else osp.join(REPO, path))


def _no_scope(node, *drop):
    """A config node without the ``_scope_`` marks that inheriting ``mmdet::`` adds."""
    if hasattr(node, 'to_dict'):
        node = node.to_dict()
    if isinstance(node, dict):
        return {k: _no_scope(v) for k, v in node.items() if k not in ('_scope_',) + drop}
    if isinstance(node, (list, tuple)):
        return [_no_scope(v) for v in node]
    return node


def test_rtmdet_recipes_wrap_mmdetections_neck_per_op_family():
    for size in ('tiny', 's'):
        base = _cfg(f'mmdet::rtmdet/rtmdet_{size}_8xb32-300e_coco.py')
        plain = _cfg(osp.join(PLUGINS, f'rtmdet_{size}_8xb32-300e_coco.py'))
        # the baseline as shipped (inheriting mmdet:: adds the scope mark)
        assert _no_scope(plain.model) == _no_scope(base.model)
        for short, op in FAMILY_OPS.items():
            cfg = _cfg(osp.join(PLUGINS, f'rtmdet_{size}_{short}-neck_8xb32-300e_coco.py'))
            neck = cfg.model.neck
            assert neck.type == 'mmattn.AttentionNeck' and neck.where == 'in'
            assert neck.neck.to_dict() == base.model.neck.to_dict()
            assert neck.plugin.attn_cfg.type == op and list(neck.levels) == [0, 1, 2]
            # nothing else differs from MMDetection's recipe
            assert _no_scope(cfg.model, 'neck') == _no_scope(base.model, 'neck')
            for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg'):
                assert _no_scope(cfg[key]) == _no_scope(base[key]), key


def test_resnet_recipes_put_the_plugin_in_stages_3_and_4():
    for name, scope in (
        ('mask-rcnn_r50-agent_fpn_1x_coco.py', 'mmdet'),
        ('upernet_r50-bra_4xb4-160k_ade20k-512x512.py', 'mmseg'),
    ):
        cfg = _cfg(osp.join(PLUGINS, name))
        assert cfg.default_scope == scope
        stages = [p.stages for p in cfg.model.backbone.plugins]
        assert stages == [(False, False, True, False), (False, False, False, True)]
        assert all(p.cfg.type == 'mmattn.AttentionPlugin' for p in cfg.model.backbone.plugins)


def test_every_recipe_has_a_shapes_twin():
    shapes = {osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs', 'shapes', '*.py'))}
    for recipe in glob.glob(osp.join(PLUGINS, '*.py')):
        fields = osp.basename(recipe)[:-3].split('_')
        if fields[0] in ('rtmdet', 'yolox'):
            twin = (
                f'{fields[0]}-{fields[1]}_'
                + '_'.join(f for f in fields[2:] if f.endswith('-neck'))
                + '_shapes.py'
            )
            twin = twin.replace('__', '_')
        else:  # mask-rcnn_r50-agent_fpn_1x_coco -> mask-rcnn_r50-agent_fpn_shapes
            twin = '_'.join(fields[:2] + (['fpn'] if 'fpn' in fields else [])) + '_shapes.py'
        assert twin in shapes, f'{osp.basename(recipe)}: no configs/shapes/{twin}'


def test_plugin_detector_memorises_a_fixed_set(tool, shapes_data, tmp_path):
    """Mask R-CNN with a thin ResNet-50 carrying Agent Attention plug-ins in stages 3-4, from
    scratch: LEARN_ITERS iterations of tools/train.py on the 4 fixed training images, then
    tools/test.py on them. Box mAP must beat the untrained model's by DET_MIN_GAIN (the criterion
    of tests/test_tools/test_train_test.py; a detector that finds nothing scores 0 and fails),
    and the plug-ins took part: their scales left zero. Measured (seed 0, one thread): untrained
    box mAP 0.0; after 60 iterations 0.512 (mask 0.492), plug-in scales up to 0.012-0.019;
    about 120 CPU s for the whole test."""
    fixed = _fixed_detection_set(str(tmp_path / 'fixed.json'))
    on_fixed_set = (
        f'test_dataloader.dataset.ann_file={fixed}',
        'test_dataloader.dataset.data_prefix.img=train/',
        f'test_evaluator.ann_file={fixed}',
    )
    baseline = _untrained_checkpoint(LEARN, str(tmp_path / 'untrained.pth'))
    tool(
        'test.py',
        LEARN,
        baseline,
        '--work-dir',
        str(tmp_path / 'untrained'),
        '--cfg-options',
        *on_fixed_set,
    )
    untrained = _metrics(str(tmp_path / 'untrained'))
    work = str(tmp_path / 'run')
    tool(
        'train.py',
        LEARN,
        '--work-dir',
        work,
        '--cfg-options',
        f'train_cfg.max_iters={LEARN_ITERS}',
        f'train_cfg.val_begin={LEARN_ITERS + 1}',
        f'default_hooks.checkpoint.interval={LEARN_ITERS}',
        'randomness.seed=0',
        f'train_dataloader.dataset.ann_file={fixed}',
    )
    ckpt = osp.join(work, f'iter_{LEARN_ITERS}.pth')
    tool(
        'test.py', LEARN, ckpt, '--work-dir', osp.join(work, 'test'), '--cfg-options', *on_fixed_set
    )
    trained = _metrics(osp.join(work, 'test'))
    key = 'coco/bbox_mAP'
    assert trained[key] > untrained.get(key, 0.0) + DET_MIN_GAIN, (trained, untrained)
    state = safe_load(ckpt)['state_dict']
    gammas = [v for k, v in state.items() if k.endswith('attn_plugin.gamma')]
    assert len(gammas) == 6 + 3 and all(g.abs().max() > 0 for g in gammas)
