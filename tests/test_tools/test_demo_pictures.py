"""demo/image_demo.py (predictions drawn with MMDetection's / MMSegmentation's inferencers, plus
a legend) and tools/analysis_tools/analyze_logs.py (loss and metric curves from scalars.json)."""

import importlib.util
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from mmattn.utils.checkpoint import save_atomic

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _module(path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_analyze_logs_plots_losses_and_metrics(tmp_path):
    logs = _module('tools/analysis_tools/analyze_logs.py', 'analyze_logs')
    run = tmp_path / 'work' / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    recs = [
        dict(loss=2.0 - i / 10, loss_cls=1.0 - i / 20, lr=1e-3, iter=i * 10, step=i * 10)
        for i in range(1, 6)
    ]
    # an iteration-based run logs its validations at step 0 (MMEngine's log_metric_by_epoch)
    recs.insert(3, {'coco/bbox_mAP': 0.1, 'coco/segm_mAP': 0.08, 'step': 0})
    recs.append({'coco/bbox_mAP': 0.2, 'coco/segm_mAP': 0.15, 'step': 0})
    (run / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
    out = logs.main([str(tmp_path / 'work')])
    assert out == str(tmp_path / 'work' / 'curves.png')
    img = mmcv.imread(out)
    assert img.shape[1] > 1000 and img.std() > 10  # a drawn figure, not a blank canvas
    train, val = logs.read_scalars(str(run / 'scalars.json'))
    assert [r['step'] for r in val] == [30, 50]  # placed after the training records before them
    drawn = logs.plot(train, val, str(tmp_path / 'c.png'))
    assert drawn == {'loss': 5, 'loss_cls': 5, 'coco/bbox_mAP': 2, 'coco/segm_mAP': 2}
    with pytest.raises(SystemExit, match='scalars.json'):
        logs.main([str(tmp_path / 'empty')])


def _untrained(config, path):
    cfg = Config.fromfile(osp.join(REPO, config))
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    meta = dict(dataset_meta=dict(classes=cfg.metainfo['classes'], palette=cfg.metainfo['palette']))
    save_atomic({'state_dict': model.state_dict(), 'meta': meta}, path)
    return cfg


@pytest.mark.parametrize(
    'config', ['configs/shapes/mask-rcnn_r18_fpn_shapes.py', 'configs/shapes/fpn_r18_shapes.py']
)
def test_image_demo_draws_predictions_with_a_legend(shapes_data, tmp_path, config):
    demo = _module('demo/image_demo.py', 'image_demo')
    ckpt = str(tmp_path / 'model.pth')
    cfg = _untrained(config, ckpt)
    img = osp.join(shapes_data['coco'], 'val', '00001.jpg')
    out = demo.main(
        [
            img,
            osp.join(REPO, config),
            '--weights',
            ckpt,
            '--out-dir',
            str(tmp_path / 'pics'),
            '--score-thr',
            '0.0',
        ]
    )
    assert osp.basename(out) == f'00001_{osp.splitext(osp.basename(config))[0]}.png'
    pic = mmcv.imread(out, channel_order='rgb')
    h, w = mmcv.imread(img).shape[:2]
    assert pic.shape[1] == w and pic.shape[0] > h  # the image, then the legend strip
    strip = pic[h:].reshape(-1, 3)
    for colour in cfg.metainfo['palette']:  # every class's swatch is drawn
        assert (np.abs(strip.astype(int) - colour).sum(1) == 0).any(), colour
    with pytest.raises(Exception, match='does not exist'):
        demo.main([img + '.missing', osp.join(REPO, config), '--weights', ckpt])
