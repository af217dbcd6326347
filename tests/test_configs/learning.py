"""The learning check of the family end-to-end tests: a model must learn the shapes, not only
the class prior.

On the bundled shapes set (``data/shapes_ade``) background covers ~81% of the labelled
pixels. A model that predicts background everywhere therefore scores aAcc ~81 and mIoU
~aAcc / 4 ~20 (the numbers the earlier tests accepted as learning), but its IoU of every shape
class (circle, rectangle, triangle) is exactly 0. The end-to-end tests read the per-class IoU
from the predictions ``tools/test.py --out`` writes and require a shape class's IoU to rise
clearly above the untrained model's and above the background-only prediction's (computed here
from the same ground truth, and asserted to be 0 for the shape classes).

Short runs (a few dozen iterations from scratch) learn the prior long before the shapes, so
the tests memorise a fixed set: ``tools/train.py`` trains on the first ``MEMORISE`` training
images (with the config's augmentation) and ``tools/test.py`` evaluates on the same images.
That shows the backbone, neck, head, losses and data pipeline learn together through the
user-facing tools; generalisation is the longer demo runs' job.
"""

import json
import os.path as osp
import pickle
from typing import List, Sequence, Tuple

import numpy as np

#: label indices after ``reduce_zero_label``: 0 background, then the three shapes
SHAPE_CLASSES = (1, 2, 3)
NAMES = ('background', 'circle', 'rectangle', 'triangle')
MEMORISE = 4
#: --cfg-options that train on, and test on, the first MEMORISE training images
TRAIN_ON_FIXED_SET = (f'train_dataloader.dataset.indices={MEMORISE}',)
TEST_ON_FIXED_SET = (
    f'test_dataloader.dataset.indices={MEMORISE}',
    'test_dataloader.dataset.data_prefix.img_path=images/training',
    'test_dataloader.dataset.data_prefix.seg_map_path=annotations/training',
)


def _load(pkl: str) -> list:
    with open(pkl, 'rb') as f:  # written by this test's own tools/test.py run
        return pickle.load(f)


def _confusion(
    results: list, predict_background: bool = False, num_classes: int = 4, ignore_index: int = 255
) -> np.ndarray:
    """``(num_classes, num_classes)`` pixel counts, rows = ground truth, cols = prediction."""
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    for sample in results:
        gt = np.asarray(sample['gt_sem_seg']['data']).ravel()
        pred = (
            np.zeros_like(gt)
            if predict_background
            else np.asarray(sample['pred_sem_seg']['data']).ravel()
        )
        keep = gt != ignore_index
        conf += np.bincount(gt[keep] * num_classes + pred[keep], minlength=num_classes**2).reshape(
            num_classes, num_classes
        )
    return conf


def class_ious(pkl: str, predict_background: bool = False) -> List[float]:
    """Per-class IoU (%) over the whole evaluated set, as mmseg's IoUMetric computes it.

    Args:
        pkl (str): Predictions written by ``tools/test.py --out`` (with ground truth).
        predict_background (bool): Score a model that predicts background everywhere on the
            same ground truth instead. Defaults to False.
    """
    conf = _confusion(_load(pkl), predict_background)
    inter = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    return [float(100 * i / u) if u else float('nan') for i, u in zip(inter, union)]


def describe(ious: Sequence[float]) -> str:
    return ', '.join(f'{n} {v:.1f}' for n, v in zip(NAMES, ious))


def assert_learned_shapes(
    trained_pkl: str, untrained_pkl: str, min_gain: float, metrics_json: dict = None
) -> List[float]:
    """The best shape class's IoU beats the untrained model's best by ``min_gain`` points.

    Also checks the reference points the criterion is measured against: on this ground truth
    a background-only prediction scores 0 on every shape class, so the criterion fails for it;
    and (with ``metrics_json``, the ``metrics.json`` of the same tools/test.py run) the IoUs
    computed here average to mmseg's own mIoU.

    Returns:
        list[float]: The trained model's per-class IoU.
    """
    trained, untrained = class_ious(trained_pkl), class_ious(untrained_pkl)
    background_only = class_ious(trained_pkl, predict_background=True)
    assert all(background_only[c] == 0 for c in SHAPE_CLASSES), background_only
    if metrics_json is not None:
        assert abs(np.mean(trained) - float(metrics_json['mIoU'])) < 0.01, (trained, metrics_json)
    best = max(trained[c] for c in SHAPE_CLASSES)
    baseline = max(untrained[c] for c in SHAPE_CLASSES)
    print(f'IoU trained: {describe(trained)}; untrained: {describe(untrained)}')  # pytest -rP
    assert best > baseline + min_gain, (
        f'trained: {describe(trained)}; untrained: {describe(untrained)}; '
        f'background only: {describe(background_only)}'
    )
    return trained


def untrained_checkpoint(config: str, path: str) -> str:
    """Save the freshly initialised model of ``config`` (seeded) as a checkpoint."""
    from mmattn.utils.checkpoint import save_atomic

    from .builders import build_recipe

    _, model = build_recipe(config)
    model.init_weights()
    save_atomic({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def train_and_test_on_fixed_set(
    tool, config: str, tmp_path, iters: int, untrained: str
) -> Tuple[str, str, dict]:
    """tools/test.py on the untrained checkpoint, tools/train.py for ``iters`` iterations and
    tools/test.py on its checkpoint, all on the first ``MEMORISE`` training images.

    Returns:
        tuple: ``(trained_pkl, untrained_pkl, trained metrics.json)``.
    """
    base = osp.join(str(tmp_path), 'untrained')
    tool(
        'test.py',
        config,
        untrained,
        '--work-dir',
        base,
        '--out',
        osp.join(base, 'preds.pkl'),
        '--cfg-options',
        *TEST_ON_FIXED_SET,
    )
    work = osp.join(str(tmp_path), 'run')
    tool(
        'train.py',
        config,
        '--work-dir',
        work,
        '--cfg-options',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_begin={iters + 1}',  # no validation pass at the last iteration
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.logger.interval=10',
        *TRAIN_ON_FIXED_SET,
    )
    ckpt = osp.join(work, f'iter_{iters}.pth')
    assert osp.isfile(ckpt)
    out = osp.join(str(tmp_path), 'trained')
    tool(
        'test.py',
        config,
        ckpt,
        '--work-dir',
        out,
        '--out',
        osp.join(out, 'preds.pkl'),
        '--cfg-options',
        *TEST_ON_FIXED_SET,
    )
    with open(osp.join(out, 'metrics.json')) as f:
        metrics = json.load(f)
    return osp.join(out, 'preds.pkl'), osp.join(base, 'preds.pkl'), metrics
