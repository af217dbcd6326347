"""External attention end to end: tools/train.py then tools/test.py on the bundled shapes set
(Semantic FPN, thin ResNet-50 with EA plugins), compared with the untrained model."""
import json
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from mmattn.utils.checkpoint import save_atomic

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/shapes/fpn_r50-ea_shapes.py'
ITERS = 40


def _metrics(work_dir):
    with open(osp.join(work_dir, 'metrics.json')) as f:
        return json.load(f)


def _untrained_checkpoint(path):
    import mmattn.models  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    save_atomic({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def test_ea_shapes_trains_beyond_untrained(tool, shapes_data, tmp_path):
    baseline = _untrained_checkpoint(str(tmp_path / 'untrained.pth'))
    tool('test.py', CONFIG, baseline, '--work-dir', str(tmp_path / 'untrained'))
    untrained = _metrics(str(tmp_path / 'untrained'))
    work = str(tmp_path / 'run')
    tool('train.py', CONFIG, '--work-dir', work, '--cfg-options',
         f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
         f'default_hooks.checkpoint.interval={ITERS}')
    ckpt = osp.join(work, f'iter_{ITERS}.pth')
    assert osp.isfile(ckpt)
    tool('test.py', CONFIG, ckpt, '--work-dir', osp.join(work, 'test'))
    trained = _metrics(osp.join(work, 'test'))
    assert float(trained['mIoU']) > float(untrained['mIoU']) + 5, (trained, untrained)
