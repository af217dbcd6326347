"""Every External Attention config parses, builds and takes a training step.

Full-size builds with channel checks run in tests/test_configs/test_all_configs.py. Here each
config's model is thinned (ResNets to depth 50 with 1/16 of the widths, EA-PVT to a 1-block
pyramid; consumers' in_channels scaled to match) so one forward/backward per config fits the
CPU test budget; the structure (plugins, heads, losses, data preprocessor) stays the config's.
"""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from .builders import REPO, build_recipe, seg_batch

CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', 'external_attention', '*.py'))
) + ['configs/shapes/fpn_r50-ea_shapes.py']


PVT_DIMS = {64: 16, 128: 32, 320: 48, 512: 64}


def _thin(model):
    bb = model['backbone']
    if bb['type'].endswith('EAPVT'):
        bb['arch'] = dict(
            embed_dims=[16, 32, 48, 64],
            num_heads=[1, 2, 3, 4],
            mlp_ratios=[2, 2, 2, 2],
            depths=[1, 1, 1, 1],
            sr_ratios=[8, 4, 2, 1],
        )
        bb['attn_cfgs'] = dict(bb['attn_cfgs'], num_slots=4)
        scale = PVT_DIMS.get
    else:
        bb.update(depth=50, base_channels=4)
        if 'stem_channels' in bb or bb['type'] == 'ResNetV1c':
            bb['stem_channels'] = bb.get('stem_channels', 64) // 16
        for plugin in bb.get('plugins') or []:
            plugin['cfg']['num_slots'] = 4
        scale = lambda c: c // 16  # noqa: E731
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        part = model.get(key)
        if (
            part
            and 'in_channels' in part
            and not (key == 'decode_head' and 'neck' in model and model['neck'])
        ):
            c = part['in_channels']
            part['in_channels'] = [scale(x) for x in c] if isinstance(c, list) else scale(c)
    return model


def _build(config):
    # the shapes config is CPU-sized already
    return build_recipe(config, None if 'shapes' in config else lambda m, cfg: _thin(m))


def test_all_recipes_present():
    names = {osp.basename(c) for c in CONFIGS}
    for prefix in (
        'mask-rcnn_r50-ea',
        'retinanet_r50-ea',
        'upernet_r50-ea',
        'upernet_r101-ea',
        'fpn_r50-ea',
        'fpn_r101-ea',
        'upernet_ea-pvt',
        'fpn_ea-pvt',
        'eanet_r101-d8',
    ):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_trains_one_step(config):
    from mmattn.models.attentions.external_attention import (
        ExternalAttention,
        MultiHeadExternalAttention,
    )

    cfg, model = _build(config)
    ops = [
        m for m in model.modules() if isinstance(m, (ExternalAttention, MultiHeadExternalAttention))
    ]
    assert ops, 'no external attention in the model'
    model.train()
    size = 64
    if cfg.default_scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs

        packed = demo_mm_inputs(
            2, [[3, size, size]] * 2, num_items=[2, 2], num_classes=80, with_mask='mask' in config
        )
    else:
        num_classes = model.decode_head.num_classes
        packed = seg_batch(num_classes, size)
    data = model.data_preprocessor(packed, True)
    if cfg.default_scope != 'mmdet':
        data['inputs'] = data['inputs'][..., :size, :size]  # crop-size padding not needed
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)) + sum(
        sum(x) for k, v in losses.items() if 'loss' in k and isinstance(v, list) for x in [v]
    )
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for op in ops for p in op.parameters()]
    assert all(g is not None for g in grads)
    # neck / head channels equal what the backbone produces
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, size, size))
    neck = getattr(model, 'neck', None)
    if neck is not None:
        assert list(neck.in_channels) == [f.shape[1] for f in feats]
    else:
        head = model.decode_head
        index = head.in_index if isinstance(head.in_index, (list, tuple)) else [head.in_index]
        expected = (
            head.in_channels if isinstance(head.in_channels, (list, tuple)) else [head.in_channels]
        )
        assert list(expected) == [feats[i].shape[1] for i in index]


def test_plugin_recipes_keep_imagenet_init():
    for config in CONFIGS:
        cfg = Config.fromfile(osp.join(REPO, config))
        plugins = cfg.model.backbone.get('plugins')
        if not plugins or 'shapes' in config:
            continue
        assert cfg.model.backbone.init_cfg.type == 'Pretrained', config
        assert plugins[0].position == 'after_conv3'
        assert plugins[0].cfg.type == 'mmattn.ExternalAttentionBlock'


def _schedule(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    gpus = int(osp.basename(config).split('_')[-2].split('xb')[0])  # 4xb4-40k -> 4 GPUs
    poly = [s for s in cfg.param_scheduler if s.type == 'PolyLR']
    return dict(
        optimizer=cfg.optim_wrapper.optimizer.to_dict(),
        paramwise=cfg.optim_wrapper.get('paramwise_cfg'),
        images=gpus * cfg.train_dataloader.batch_size,
        iters=cfg.train_cfg.max_iters,
        poly=[(s.power, s.eta_min, s.end) for s in poly],
        warmup=[s.type for s in cfg.param_scheduler if s.type != 'PolyLR'],
    )


def test_pyramids_share_the_official_agent_pvt_semantic_fpn_schedule():
    """EA-PVT, FLatten-PVT and Agent-PVT Semantic FPN train on one schedule: the official
    Agent-PVT one (AdamW 2e-4, wd 1e-4, poly 0.9 to 0, no warm-up, 40k x 16 images)."""
    official = _schedule('configs/agent_attention/fpn_agent-pvt-t_8xb2-40k_ade20k-512x512.py')
    assert official['optimizer'] == dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
    assert (official['images'], official['iters'], official['poly'], official['warmup']) == (
        16,
        40000,
        [(0.9, 0.0, 40000)],
        [],
    )
    for config in (
        'configs/external_attention/fpn_ea-pvt-t_4xb4-40k_ade20k-512x512.py',
        'configs/external_attention/fpn_ea-pvt-s_4xb4-40k_ade20k-512x512.py',
        'configs/flatten/fpn_flatten-pvt-t_8xb2-40k_ade20k-512x512.py',
    ):
        assert _schedule(config) == official, config


def test_resnet_semantic_fpn_follows_mmseg_ade20k_160k():
    """mmseg's configs/sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py: SGD 0.01, poly to 1e-4."""
    for depth in (50, 101):
        s = _schedule(f'configs/external_attention/fpn_r{depth}-ea_4xb4-160k_ade20k-512x512.py')
        assert (
            s['optimizer']['type'],
            s['optimizer']['lr'],
            s['optimizer']['weight_decay'],
            s['images'],
            s['iters'],
            s['poly'],
        ) == ('SGD', 0.01, 5e-4, 16, 160000, [(0.9, 1e-4, 160000)])
