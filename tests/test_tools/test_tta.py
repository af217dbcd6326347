"""``tools/test.py --tta``: the mask merger is right, and on the bundled data the TTA metric is
computed and differs from single scale."""

import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmattn.utils.checkpoint import save_atomic

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Every recipe's tta_model / tta_pipeline is checked where every config is loaded anyway:
# tests/test_configs/test_all_configs.py (assert_recipe_tta).


def test_instance_seg_tta_flips_masks_back_and_keeps_them_with_their_boxes():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmattn.det import InstanceSegTTAModel
    from mmattn.det.tta import flip_masks_back

    h, w = 8, 10
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 1:4, 0:3] = True  # object A, left
    masks[1, 5:8, 6:10] = True  # object B, right
    boxes = torch.tensor([[0.0, 1.0, 3.0, 4.0], [6.0, 5.0, 10.0, 8.0]])

    def view(flip, scores):
        s = DetDataSample(
            metainfo=dict(
                ori_shape=(h, w),
                img_shape=(h, w),
                flip=flip,
                flip_direction='horizontal' if flip else None,
            )
        )
        pred = InstanceData()
        pred.bboxes = boxes.clone()
        pred.masks = masks.clone()
        if flip:  # what the model predicts on the flipped image
            pred.bboxes = torch.stack(
                [w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1
            )
            pred.masks = masks.flip(-1)
        pred.scores = torch.tensor(scores)
        pred.labels = torch.tensor([0, 1])
        s.pred_instances = pred
        return s

    class Stub(torch.nn.Module):  # the merger never runs the wrapped model
        def test_step(self, data):
            raise AssertionError('not called')

    tta = InstanceSegTTAModel(
        module=Stub(), tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    )
    # A scores higher unflipped, B higher flipped: the kept masks come from both views
    merged = tta._merge_single_sample([view(False, [0.9, 0.3]), view(True, [0.2, 0.8])])
    res = merged.pred_instances
    assert torch.allclose(res.scores, torch.tensor([0.9, 0.8]))
    assert torch.allclose(res.bboxes, boxes)
    assert torch.equal(res.masks, masks)  # B's mask came from the flipped view, flipped back
    assert torch.equal(flip_masks_back(masks.flip(-2), 'vertical'), masks)
    with pytest.raises(ValueError, match='flip direction'):
        flip_masks_back(masks, 'sideways')


def _train(tool, config, work, iters):
    tool(
        'train.py',
        config,
        '--work-dir',
        work,
        '--cfg-options',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_begin={iters + 1}',
        f'default_hooks.checkpoint.interval={iters}',
        'randomness.seed=0',
    )
    return osp.join(work, f'iter_{iters}.pth')


def _test(tool, config, ckpt, work, *extra, images=8):
    proc = tool(
        'test.py',
        config,
        ckpt,
        '--work-dir',
        work,
        *extra,
        '--cfg-options',
        f'test_dataloader.dataset.indices={images}',
    )
    with open(osp.join(work, 'metrics.json')) as f:
        return json.load(f), proc.stderr


def test_seg_tta_metric_is_computed_and_differs_from_single_scale(tool, shapes_data, tmp_path):
    """A few training iterations, then tools/test.py with and without --tta on the same 8
    validation images: both give the metrics, and TTA's are different numbers."""
    config = 'configs/shapes/fpn_r18_shapes.py'
    ckpt = _train(tool, config, str(tmp_path / 'train'), 20)
    single, _ = _test(tool, config, ckpt, str(tmp_path / 'single'))
    tta, log = _test(tool, config, ckpt, str(tmp_path / 'tta'), '--tta')
    assert '12 views per image (6 x 2' in log, log[-2000:]
    for key in ('mIoU', 'aAcc'):
        assert 0 < single[key] <= 100 and 0 < tta[key] <= 100, (key, single, tta)
    assert any(abs(single[k] - tta[k]) > 1e-6 for k in ('mIoU', 'aAcc')), (single, tta)


def test_det_tta_predictions_are_merged_views(tool, shapes_data, tmp_path):
    """Mask R-CNN after 2 iterations (a few minutes of training would be needed for a mAP above
    zero): --tta runs 6 views per image, reports the COCO metrics, and its merged boxes and
    masks differ from the single-scale ones on the same images (--out of both runs)."""
    import pickle

    config = 'configs/shapes/mask-rcnn_r18_fpn_shapes.py'
    ckpt = _train(tool, config, str(tmp_path / 'train'), 2)
    single, _ = _test(
        tool,
        config,
        ckpt,
        str(tmp_path / 'single'),
        '--out',
        str(tmp_path / 'single.pkl'),
        images=2,
    )
    tta, log = _test(
        tool,
        config,
        ckpt,
        str(tmp_path / 'tta'),
        '--tta',
        '--out',
        str(tmp_path / 'tta.pkl'),
        images=2,
    )
    assert '6 views per image (3 x 2' in log, log[-2000:]
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0 <= single[key] <= 1 and 0 <= tta[key] <= 1, (key, single, tta)
    with open(tmp_path / 'single.pkl', 'rb') as f:
        plain = pickle.load(f)
    with open(tmp_path / 'tta.pkl', 'rb') as f:
        merged = pickle.load(f)
    assert len(plain) == len(merged) == 2
    for a, b in zip(plain, merged):
        pa, pb = a['pred_instances'], b['pred_instances']
        assert len(pb['bboxes']) > 0 and len(pb['masks']) == len(pb['bboxes'])
        same = len(pa['bboxes']) == len(pb['bboxes']) and torch.allclose(
            torch.as_tensor(pa['bboxes']), torch.as_tensor(pb['bboxes'])
        )
        assert not same, 'TTA gave the single-scale boxes'


def test_tta_without_a_pipeline_is_one_line_error(tool, shapes_data, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py'))
    cfg._cfg_dict.pop('tta_pipeline')
    path = str(tmp_path / 'no_tta.py')
    cfg.dump(path)
    ckpt = tmp_path / 'x.pth'
    save_atomic({'state_dict': {}, 'meta': {}}, str(ckpt))  # refused for the config first
    proc = tool('test.py', path, str(ckpt), '--tta', check=False)
    assert proc.returncode == 2 and 'has no tta_pipeline' in proc.stderr, proc.stderr[-2000:]
