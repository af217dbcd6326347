"""The end-to-end tests' learning criterion (learning.py) rejects a background-only model.

Built on the real label maps of the images the end-to-end tests memorise, with predictions
written in the layout ``tools/test.py --out`` produces.
"""

import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch

from .learning import MEMORISE, assert_learned_shapes, class_ious


def _fixed_set_labels(ade_root):
    """Label maps of the first MEMORISE training images, after reduce_zero_label."""
    folder = osp.join(ade_root, 'annotations', 'training')
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    labels = []
    for name in names[:MEMORISE]:
        raw = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        labels.append(np.where(raw == 0, 255, raw - 1))  # 0 'other' -> ignored
    return labels


def _write(path, labels, predict):
    results = [
        dict(
            gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
            pred_sem_seg=dict(data=torch.from_numpy(predict(gt))[None]),
        )
        for gt in labels
    ]
    with open(path, 'wb') as f:
        pickle.dump(results, f)
    return str(path)


def test_background_only_fails_and_learning_passes(shapes_data, tmp_path):
    labels = _fixed_set_labels(shapes_data['ade'])
    background = _write(tmp_path / 'bg.pkl', labels, lambda gt: np.zeros_like(gt))
    # What the earlier criteria saw from such a model: aAcc 88.2, mIoU 22.1 on these images.
    valid = np.concatenate([gt[gt != 255] for gt in labels])
    assert round(100 * (valid == 0).mean(), 1) == 88.2
    ious = class_ious(background)
    assert ious[1:] == [0.0, 0.0, 0.0] and round(float(np.mean(ious)), 1) == 22.1
    # an untrained-like model painting everything rectangle
    rectangle = _write(tmp_path / 'rect.pkl', labels, lambda gt: np.full_like(gt, 2))
    with pytest.raises(AssertionError):
        assert_learned_shapes(background, rectangle, min_gain=20)
    with pytest.raises(AssertionError):  # nor does painting one shape class everywhere
        assert_learned_shapes(rectangle, background, min_gain=20)
    # a model that found the rectangles (and nothing else) passes
    found = _write(tmp_path / 'found.pkl', labels, lambda gt: np.where(gt == 2, 2, 0))
    trained = assert_learned_shapes(found, background, min_gain=20)
    assert trained[2] == 100.0
