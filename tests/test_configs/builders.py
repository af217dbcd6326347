"""What every family's config tests need: build a recipe's model on CPU, and a seg batch."""

import os.path as osp
from typing import Callable, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.utils import import_modules_from_strings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def bn_instead_of_syncbn(obj):
    """SyncBN needs a process group; one CPU step uses BN (same parameters)."""
    if isinstance(obj, dict):
        return {
            k: ('BN' if k == 'type' and v == 'SyncBN' else bn_instead_of_syncbn(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(bn_instead_of_syncbn(v) for v in obj)
    return obj


def build_recipe(config: str, edit: Optional[Callable[[dict, Config], dict]] = None):
    """``(cfg, model)`` of a repo config, seeded, with BN for SyncBN.

    ``edit(model_cfg, cfg)`` may shrink the model dict (thin stages, drop ``init_cfg``) first.
    """
    cfg = Config.fromfile(osp.join(REPO, config))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model_cfg = bn_instead_of_syncbn(cfg.to_dict()['model'])
    if edit is not None:
        model_cfg = edit(model_cfg, cfg)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(ConfigDict(model_cfg))
    return cfg, model


def seg_batch(num_classes: int, size: int = 64) -> dict:
    """Two random uint8 images with random label maps, packed as the segmentor's data."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
