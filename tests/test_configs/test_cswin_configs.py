"""CSWin-family recipes (Agent-CSWin, FLatten-CSWin): the set, the hyper-parameters the headers
cite, siblings that differ only in the variant, and one training step per head.

Full-size builds with channel checks run in tests/test_configs/test_all_configs.py. Here one
T recipe per head (both families among them) takes one training step with the backbone
thinned to width 16 and one block per stage (same layout of ops; consumers' in_channels scaled
to match); heads, losses and optimizer settings stay the config's. Siblings (S, B, and 3x over
1x) are checked to differ from their parent in exactly the keys their header names.
"""

import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmattn.models.attentions.cross_shaped_window_attention import CSWinAttention

from .builders import REPO, build_recipe, seg_batch

CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', 'cswin', '*.py'))
)
HEADS = (
    'mask-rcnn_{}_fpn_1x_coco.py',
    'mask-rcnn_{}_fpn_ms-crop-3x_coco.py',
    'retinanet_{}_fpn_1x_coco.py',
    'upernet_{}_8xb2-160k_ade20k-512x512.py',
    'fpn_{}_8xb2-40k_ade20k-512x512.py',
)
DROP = dict(tiny=0.3, small=0.4, base=0.6)  # CSWin's dense configs
AGENT_BIASES = ('an_bias', 'na_bias', 'ah_bias', 'aw_bias', 'ha_bias', 'wa_bias')


def test_recipes_for_every_head_and_variant():
    names = {osp.basename(c) for c in CONFIGS}
    expected = {
        h.format(f'{fam}-cswin-{v}') for h in HEADS for fam in ('agent', 'flatten') for v in 'tsb'
    }
    assert names == expected


@pytest.mark.parametrize('config', CONFIGS)
def test_recipe_hyper_parameters(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    fam, v = re.search(r'(agent|flatten)-cswin-(\w)_', config).groups()
    bb = cfg.model.backbone
    arch = {'t': 'tiny', 's': 'small', 'b': 'base'}[v]
    assert bb.type == ('mmattn.AgentCSWin' if fam == 'agent' else 'mmattn.FLattenCSWin')
    assert bb.arch == arch and bb.out_norms and 'attn_cfgs' not in bb
    assert bb.drop_path_rate == DROP[arch]
    assert bb.init_cfg == dict(
        type='Pretrained', checkpoint=f'pretrained/{fam}_cswin_{v}_mmattn.pth'
    )
    dims = [96, 192, 384, 768] if v == 'b' else [64, 128, 256, 512]
    consumer = cfg.model.get('neck') or cfg.model.decode_head
    if 'retinanet' in config:  # stages 2-4 (as mmdet's RetinaNet-Swin): no unused norm0
        assert bb.out_indices == (1, 2, 3) and consumer.in_channels == dims[1:]
    else:
        assert bb.out_indices == (0, 1, 2, 3) and consumer.in_channels == dims
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW'
    keys = cfg.optim_wrapper.get('paramwise_cfg', {}).get('custom_keys', {})
    if 'upernet' in config:  # CSWin's segmentation configs
        assert (opt.lr, opt.weight_decay, opt.betas) == (6e-5, 0.01, (0.9, 0.999))
        assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
        assert cfg.model.auxiliary_head.in_channels == dims[2]
        warm, poly = cfg.param_scheduler
        assert (warm.type, warm.start_factor, warm.end) == ('LinearLR', 1e-6, 1500)
        assert (poly.type, poly.power, poly.eta_min) == ('PolyLR', 1.0, 0.0)
    elif 'fpn_' in config and cfg.default_scope == 'mmseg':  # PVT's Semantic FPN protocol
        assert (opt.lr, opt.weight_decay, cfg.train_cfg.max_iters) == (2e-4, 1e-4, 40000)
        (poly,) = cfg.param_scheduler
        assert (poly.type, poly.power) == ('PolyLR', 0.9)
        assert not keys
    else:  # Swin's detection protocol, which the CSWin paper follows
        assert (opt.lr, opt.weight_decay) == (1e-4, 0.05)
        epochs = 36 if '3x' in config else 12
        assert cfg.train_cfg.max_epochs == epochs
        steps = [27, 33] if '3x' in config else [8, 11]
        assert cfg.param_scheduler[-1].milestones == steps
        if 'retinanet' in config:
            assert (cfg.model.neck.start_level, cfg.model.neck.add_extra_convs) == (0, 'on_input')
        else:
            pipe = cfg.train_dataloader.dataset.pipeline
            assert any(t.type == 'RandomChoice' for t in pipe)  # multi-scale + crop
    if keys:
        assert keys['norm'] == dict(decay_mult=0.0)
        assert all(keys.get(b) == dict(decay_mult=0.0) for b in AGENT_BIASES) == (fam == 'agent')


def _flat(d, prefix=''):
    out = {}
    for k, val in d.items():
        if isinstance(val, dict):
            out.update(_flat(val, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = val
    return out


SIBLINGS = [c for c in CONFIGS if '-t_' not in c or '3x' in c]


@pytest.mark.parametrize('config', SIBLINGS)
def test_siblings_differ_from_parent_only_where_named(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    with open(osp.join(REPO, config)) as f:
        parent = re.search(r"^_base_ = '(.+)'$", f.read(), re.M).group(1)
    base = Config.fromfile(osp.join(REPO, osp.dirname(config), parent))
    a, b = _flat(cfg.to_dict()), _flat(base.to_dict())
    diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    if '3x' in config:
        allowed = {'train_cfg.max_epochs', 'param_scheduler'}
    else:
        allowed = {
            'model.backbone.arch',
            'model.backbone.drop_path_rate',
            'model.backbone.init_cfg.checkpoint',
            'model.neck.in_channels',
            'model.decode_head.in_channels',
            'model.auxiliary_head.in_channels',
        }
    assert diff and diff <= allowed, diff - allowed


#: one training step per head, both families covered (each step is 5-20 s on a CPU core; the
#: other primitives differ from these only in the family, which test_recipe_hyper_parameters
#: and tests/test_configs/test_all_configs.py cover)
PRIMITIVES = [
    'configs/cswin/mask-rcnn_agent-cswin-t_fpn_1x_coco.py',
    'configs/cswin/retinanet_flatten-cswin-t_fpn_1x_coco.py',
    'configs/cswin/upernet_flatten-cswin-t_8xb2-160k_ade20k-512x512.py',
    'configs/cswin/fpn_agent-cswin-t_8xb2-40k_ade20k-512x512.py',
]


def _thin(model):
    bb = model['backbone']
    bb['arch'] = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4])
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        part = model.get(key)
        if part and 'in_channels' in part and not (key != 'neck' and model.get('neck')):
            c = part['in_channels']
            part['in_channels'] = [x // 4 for x in c] if isinstance(c, list) else c // 4
    bb.pop('init_cfg', None)
    return model


@pytest.mark.parametrize('config', PRIMITIVES)
def test_builds_and_trains_one_step(config):
    cfg, model = build_recipe(config, lambda m, c: _thin(m))
    stripes = [m for m in model.backbone.modules() if isinstance(m, CSWinAttention)]
    assert [m.split_size for m in stripes] == [7, None]
    first = type(model.backbone.stages[0].blocks[0].attn).__name__
    assert first == ('AgentAttention' if 'agent' in config else 'FocusedLinearAttention')
    model.train()
    size = 64
    if cfg.default_scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs

        packed = demo_mm_inputs(
            2,
            [[3, size, size + 16]] * 2,
            num_items=[2, 3],
            num_classes=80,
            with_mask='mask-rcnn' in config,
        )
    else:
        packed = seg_batch(model.decode_head.num_classes, size)
        model.data_preprocessor.size = (size, size)
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    parsed, _ = model.parse_losses(losses)
    assert torch.isfinite(parsed)
    parsed.backward()
    missing = [n for n, p in model.backbone.named_parameters() if p.grad is None]
    assert not missing, missing
