"""Every Agent Attention config parses, builds, has the official parameter count, matches
channels, carries the official optimizer settings and takes one training step."""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from .builders import REPO, build_recipe, seg_batch
from .learning import (
    assert_learned_shapes,
    train_and_test_on_fixed_set,
    untrained_checkpoint,
)

CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', 'agent_attention', '*.py'))
)
SHAPES = 'configs/shapes/mask-rcnn_agent-pvt-tiny_fpn_shapes.py'
SHAPES_SEG = 'configs/shapes/fpn_agent-swin-tiny_shapes.py'

#: #params (M) in the official README tables (downstream/{detection,segmentation}/README.md)
OFFICIAL_PARAMS = {
    'mask-rcnn_agent-pvt-t': 31,
    'mask-rcnn_agent-pvt-s': 40,
    'mask-rcnn_agent-pvt-m': 56,
    'mask-rcnn_agent-pvt-l': 68,
    'mask-rcnn_agent-swin-t': 48,
    'mask-rcnn_agent-swin-s': 69,
    'cascade-mask-rcnn_agent-swin-t': 86,
    'cascade-mask-rcnn_agent-swin-s': 107,
    'cascade-mask-rcnn_agent-swin-b': 145,
    'retinanet_agent-pvt-t': 21,
    'retinanet_agent-pvt-s': 30,
    'retinanet_agent-pvt-m': 46,
    'retinanet_agent-pvt-l': 58,
    'upernet_agent-swin-t': 61,
    'upernet_agent-swin-s': 81,
    'upernet_agent-swin-b': 121,
    'fpn_agent-pvt-t': 15,
    'fpn_agent-pvt-s': 24,
    'fpn_agent-pvt-m': 40,
    'fpn_agent-pvt-l': 52,
}


#: configs built at full size (parameter count vs the official table); the others take their
#: training step with one block per stage (same widths, heads, agents and head), which keeps
#: the suite within its CPU budget — their full-size counts are in README.md.
FULL_SIZE = (
    'mask-rcnn_agent-pvt-t_fpn_1x_coco.py',
    'retinanet_agent-pvt-t_fpn_1x_coco.py',
    'upernet_agent-swin-t_8xb2-160k_ade20k-512x512.py',
)


def _thin(backbone):
    """One block per stage (two in Swin's third stage, so 'M' stages keep both kinds)."""
    from mmattn.models.backbones.pvt import AgentPVT
    from mmattn.models.backbones.swin import AgentSwin

    arch = backbone['arch']
    if not isinstance(arch, str):
        return backbone
    if backbone['type'].endswith('AgentPVT'):
        backbone['arch'] = dict(AgentPVT.arch_zoo[arch], depths=[1, 1, 1, 1])
    else:
        name = {'t': 'tiny', 's': 'small', 'b': 'base'}.get(arch, arch)
        backbone['attn_cfgs'] = AgentSwin.layout_cfgs(
            AgentSwin.official_layouts[name], [1, 1, 2, 1]
        )
        backbone['arch'] = dict(AgentSwin.arch_zoo[arch], depths=[1, 1, 2, 1])
    return backbone


def _few_rois(model_cfg):
    """8 sampled RoIs per image and cascade stage instead of 512 (and 16 proposals): the
    cascade's 4conv1fc heads would cost ~350 GMACs per training step otherwise (27 s on CPU).
    The heads themselves stay the config's."""
    train_cfg = model_cfg['train_cfg']
    train_cfg['rpn_proposal'].update(nms_pre=16, max_per_img=16)
    for stage in train_cfg['rcnn']:
        stage['sampler']['num'] = 8
    return model_cfg


def _build(config, size=64, thin=False):
    def edit(model_cfg, cfg):
        model_cfg['backbone'].pop('init_cfg', None)  # no converted weights in the test suite
        if thin:
            model_cfg['backbone'] = _thin(model_cfg['backbone'])
        if model_cfg['type'] == 'CascadeRCNN':
            model_cfg = _few_rois(model_cfg)
        if cfg.default_scope == 'mmseg':  # pad to the small test input, not the 512 crop
            model_cfg['data_preprocessor']['size'] = (size, size)
        return model_cfg

    return build_recipe(config, edit)


def test_all_recipes_present():
    names = {osp.basename(c).rsplit('_', 1)[0] for c in CONFIGS}
    for head, variants in (
        ('mask-rcnn_agent-pvt-{}_fpn', 'tsml'),
        ('retinanet_agent-pvt-{}_fpn', 'tsml'),
        ('fpn_agent-pvt-{}_8xb2-40k', 'tsml'),
        ('upernet_agent-swin-{}_8xb2-160k', 'tsb'),
        ('mask-rcnn_agent-swin-{}_fpn', 'ts'),
        ('mask-rcnn_agent-swin-{}_fpn_ms-crop-3x', 'ts'),
        ('cascade-mask-rcnn_agent-swin-{}_fpn_4conv1fc-giou_1x', 't'),
        ('cascade-mask-rcnn_agent-swin-{}_fpn_4conv1fc-giou_ms-crop-3x', 'tsb'),
    ):
        for v in variants:
            assert head.format(v) in names or any(n.startswith(head.format(v)) for n in names), (
                head.format(v)
            )


@pytest.mark.parametrize('config', CONFIGS + [SHAPES, SHAPES_SEG])
def test_config_builds_and_trains_one_step(config):
    from mmattn.models.attentions.agent_attention import AgentAttention

    full = osp.basename(config) in FULL_SIZE
    cfg, model = _build(config, thin=not full)
    name = osp.basename(config).split('_')[0] + '_' + osp.basename(config).split('_')[1]
    if 'shapes' not in config:
        assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    if full:
        params = sum(p.numel() for p in model.parameters()) / 1e6
        # the official tables round inconsistently (UperNet Swin-B 121.6M is listed as 121M)
        assert abs(params - OFFICIAL_PARAMS[name]) < 0.7, (config, params)
    ops = [m for m in model.modules() if isinstance(m, AgentAttention)]
    assert ops, 'no agent attention in the model'
    if 'swin' in config and 'shapes' not in config:  # official Swin no-decay keys
        keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        for k in (
            'an_bias',
            'na_bias',
            'ah_bias',
            'aw_bias',
            'ha_bias',
            'wa_bias',
            'relative_position_bias_table',
            'norm',
        ):
            assert keys[k].decay_mult == 0.0
    model.train()
    size = 64
    if cfg.default_scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs

        packed = demo_mm_inputs(
            2,
            [[3, size, size]] * 2,
            num_items=[2, 2],
            num_classes=80 if 'shapes' not in config else 3,
            with_mask='mask' in config,
        )
    else:
        packed = seg_batch(model.decode_head.num_classes, size)
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for op in ops for p in op.parameters())
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, size, size))
    neck = getattr(model, 'neck', None)
    if neck is not None:
        assert list(neck.in_channels) == [f.shape[1] for f in feats]
    else:
        assert list(model.decode_head.in_channels) == [f.shape[1] for f in feats]
        assert model.auxiliary_head.in_channels == feats[2].shape[1]


def test_cascade_recipes_are_official():
    """Agent-Swin Cascade Mask R-CNN as in the official configs/agent_swin/*crcnn* (mmdet 2.x):
    three class-specific 4conv1fc box heads (SyncBN) regressing decoded boxes with GIoU (weight
    10), the cascade's target stds, the Swin optimizer, 1x (8, 11) / 3x (27, 33) steps, drop
    path T/S 0.1, B 0.4, the DETR-style multi-scale + crop augmentation."""
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
    cascades = [c for c in CONFIGS if osp.basename(c).startswith('cascade-mask-rcnn')]
    assert len(cascades) == 4, cascades
    for config in cascades:
        cfg = Config.fromfile(osp.join(REPO, config))
        model = cfg.model
        assert model.type == 'CascadeRCNN' and model.roi_head.type == 'CascadeRoIHead'
        heads = model.roi_head.bbox_head
        assert [h.bbox_coder.target_stds for h in heads] == stds
        for h in heads:
            assert (
                h.type,
                h.num_shared_convs,
                h.num_shared_fcs,
                h.conv_out_channels,
                h.fc_out_channels,
            ) == ('ConvFCBBoxHead', 4, 1, 256, 1024)
            assert h.reg_decoded_bbox and not h.reg_class_agnostic
            assert h.norm_cfg.type == 'SyncBN' and h.num_classes == 80
            assert (h.loss_bbox.type, h.loss_bbox.loss_weight) == ('GIoULoss', 10.0)
        assert model.roi_head.stage_loss_weights == [1, 0.5, 0.25]
        assert [s.assigner.pos_iou_thr for s in model.train_cfg.rcnn] == [0.5, 0.6, 0.7]
        variant = osp.basename(config).split('agent-swin-')[1][0]
        assert model.backbone.arch == {'t': 'tiny', 's': 'small', 'b': 'base'}[variant]
        assert model.backbone.drop_path_rate == (0.4 if variant == 'b' else 0.1)
        assert model.backbone.init_cfg.checkpoint == f'pretrained/agent_swin_{variant}_mmattn.pth'
        assert model.neck.in_channels == (
            [128, 256, 512, 1024] if variant == 'b' else [96, 192, 384, 768]
        )
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-4, 0.05)
        assert cfg.optim_wrapper.get('clip_grad') is None
        assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'  # no AMP
        steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0]
        warm = [s for s in cfg.param_scheduler if s.type == 'LinearLR'][0]
        assert (warm.end, warm.start_factor) == (500, 0.001)
        epochs = 12 if '_1x_' in config else 36
        assert cfg.train_cfg.max_epochs == epochs
        assert steps.milestones == ([8, 11] if epochs == 12 else [27, 33])
        assert cfg.train_dataloader.batch_size == 2
        assert cfg.train_dataloader.dataset.pipeline[3].type == 'RandomChoice'


def test_dense_agent_grids_are_official():
    for config in CONFIGS:
        bb = Config.fromfile(osp.join(REPO, config)).model.backbone
        grids = [tuple(g) for g in bb.agent_shapes]
        if 'pvt' in config:
            assert grids == [(12, 12), (16, 16), (28, 28), (28, 28)], config
        elif 'swin-s' in config and 'upernet' in config:
            assert grids == [(9, 9), (12, 12), (7, 7), (7, 7)], config
        else:
            assert grids == [(9, 9), (12, 12), (14, 14), (7, 7)], config


# a minute or two on 2 idle cores; the larger limit only covers a machine shared with other jobs
@pytest.mark.timeout(2400)
def test_shapes_config_learns_shapes_end_to_end(tool, shapes_data, tmp_path):
    """tools/train.py for 60 iterations of the tiny Agent-Swin Semantic FPN on 4 fixed training
    images, tools/test.py on them.

    Criterion (see learning.py): the best shape class's IoU beats the untrained model's by 20
    points; a background-everywhere model scores 0 on every shape class (aAcc 88.2 / mIoU 22.1
    on these 4 images), so it fails. Measured: untrained best shape IoU 1.8, trained rectangle
    53.8 (circle, triangle 0; after 30 iterations all three were still 0). (The earlier criteria,
    training loss falling, aAcc > 50 and a lower held-out loss after 20 iterations, all hold
    for a model that has learned only the class prior.)
    """
    untrained = untrained_checkpoint(SHAPES_SEG, str(tmp_path / 'untrained.pth'))
    trained, baseline, metrics = train_and_test_on_fixed_set(
        tool, SHAPES_SEG, tmp_path, 60, untrained
    )
    assert_learned_shapes(trained, baseline, min_gain=20, metrics_json=metrics)
