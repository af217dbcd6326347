"""Detector end2end ONNX export: raw image -> dets / labels / masks in stock onnxruntime against
MMDetection's ``test_step``, at the export size and another size; its ONNX-only pieces
(RoiAlign, NonMaxSuppression, the fixed-size post-processing) against the eager ops.

The models have random weights with the classifiers' scales chosen so that scores are spread
and many boxes pass 0.3 (a model whose scores never pass 0.3 would make the check vacuous; a
detector trained for the few iterations a test can afford scores below 0.3, issue 28)."""

import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmattn.deploy import build_export_model, export_onnx, run_onnx, verify_onnx
from mmattn.deploy.det_end2end import (
    DetEnd2End,
    compare_detections,
    det_reference,
    detection_noise_floor,
    spread_det_scores,
)
from mmattn.deploy.onnx_export import _test_image, export_wrapper
from mmattn.utils.cli import UserInputError

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _retinanet(cfg):
    torch.manual_seed(0)
    model, _ = build_export_model(cfg)
    spread_det_scores(model)  # focal-loss init scores ~0.01 everywhere
    return model.eval()


# A narrow Agent-CSWin (global agent attention in stages 1-2, CSWin stripes of 7 in stages
# 3-4): the CSWin family's export in the suite, with stripes padded at 128 x 160 and 160 x 96.
CSWIN_NANO = dict(
    type='mmattn.AgentCSWin',
    arch=dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]),
    drop_path_rate=0.0,
    out_norms=True,
)


def _mask_rcnn():
    """configs/shapes/mask-rcnn_r18_fpn_shapes.py with a narrow Agent-CSWin backbone and spread
    RPN, class and mask logits."""
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/shapes/mask-rcnn_r18_fpn_shapes.py'))
    cfg.model.backbone = dict(CSWIN_NANO)
    cfg.model.neck.in_channels = [32, 64, 128, 256]
    model, _ = build_export_model(cfg)
    model.eval()
    spread_det_scores(model, (128, 160))
    return model


@pytest.fixture(scope='module')
def retinanet(tmp_path_factory, retinanet_config):
    tmp = tmp_path_factory.mktemp('retinanet')
    model = _retinanet(retinanet_config(tmp))
    path = str(tmp / 'retinanet.onnx')
    # 160 x 192: the stride-128 level must be at least 2 x 2 for the sizes to stay symbolic
    info = export_onnx(model, 'det', path, 'end2end', shape=(160, 192))
    assert info['outputs'] == ['dets', 'labels'] and info['fixed'] == [], info
    return model, path


@pytest.fixture(scope='module')
def mask_rcnn(tmp_path_factory):
    model = _mask_rcnn()
    path = str(tmp_path_factory.mktemp('mask_rcnn') / 'mask_rcnn.onnx')
    info = export_onnx(model, 'det', path, 'end2end', shape=(128, 160))
    assert info['outputs'] == ['dets', 'labels', 'masks'] and info['fixed'] == [], info
    return model, path


def _check(row):
    assert row['boxes'] >= 10, row  # not vacuous: boxes above 0.3 exist
    assert row['matched'] == row['boxes'] and row['extra'] == 0, row
    assert row['min_iou'] >= 0.99, row
    assert row.get('min_mask_iou', 1.0) >= 0.95, row


@pytest.mark.timeout(600)
@pytest.mark.parametrize('shape,batch', [((160, 192), 1), ((192, 160), 3)])
def test_retinanet_end2end(retinanet, shape, batch):
    model, path = retinanet
    (row,) = verify_onnx(model, 'det', path, 'end2end', [shape], batch=batch)
    _check(row)


@pytest.mark.timeout(600)
@pytest.mark.parametrize('shape,batch', [((128, 160), 1), ((160, 96), 2)])
def test_mask_rcnn_end2end(mask_rcnn, shape, batch):
    model, path = mask_rcnn
    (row,) = verify_onnx(model, 'det', path, 'end2end', [shape], batch=batch)
    _check(row)
    assert 'min_mask_iou' in row


@pytest.mark.parametrize('which', ['retinanet', 'mask_rcnn'])
def test_files_hold_standard_onnx_operators_only(which, request):
    """NMS, RoIAlign and the mask paste leave no custom-domain node: stock onnxruntime runs the
    file without a custom-op library (the NMS and RoIAlign translations must be in use)."""
    import onnx

    _, path = request.getfixturevalue(which)
    nodes = onnx.load(path).graph.node
    assert {n.domain for n in nodes} <= {'', 'ai.onnx'}, {n.domain for n in nodes}
    ops = {n.op_type for n in nodes}
    assert 'NonMaxSuppression' in ops, ops
    if which == 'mask_rcnn':
        assert {'RoiAlign', 'GridSample'} <= ops, ops


@pytest.mark.parametrize('which', ['retinanet', 'mask_rcnn'])
def test_fixed_size_postprocessing_equals_test_step(which, request):
    """The wrapper in eager mode (mmcv's kernels behind the custom ops) gives test_step's
    detections in test_step's order: the padding, score -1 filtering, per-level top-k, level
    selection of RoIs and whole-image mask paste change nothing."""
    model, _ = request.getfixturevalue(which)
    img = _test_image(2, (160, 192), torch.Generator().manual_seed(3))
    ref = det_reference(model, img, which == 'mask_rcnn')
    with torch.no_grad():
        got = [t.numpy() for t in DetEnd2End(model)(img)]
    for i, r in enumerate(ref):
        k = len(r['scores'])
        assert k > 0 and (got[0][i, k:, 4] == 0).all() and (got[1][i, k:] == -1).all()
        np.testing.assert_allclose(got[0][i, :k, :4], r['bboxes'], rtol=0, atol=1e-4)
        np.testing.assert_allclose(got[0][i, :k, 4], r['scores'], rtol=0, atol=1e-6)
        assert (got[1][i, :k] == r['labels']).all()
        if which == 'mask_rcnn':
            assert (got[2][i, :k] == r['masks']).all() and not got[2][i, k:].any()
            assert r['masks'].any()


def _export_op(tmp_path, module, args, names, axes):
    """Export ``module(*args)`` with the ``axes`` of each input dynamic."""
    auto = torch.export.Dim.AUTO
    path = str(tmp_path / 'op.onnx')
    from mmattn.deploy.onnx_ops import ONNX_TRANSLATIONS

    torch.onnx.export(
        module,
        args,
        path,
        input_names=names,
        dynamo=True,
        dynamic_shapes={n: {i: auto for i in ax} for n, ax in zip(names, axes)},
        opset_version=18,
        external_data=False,
        optimize=False,
        custom_translation_table=ONNX_TRANSLATIONS,
    )
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


class _RoIAlign(torch.nn.Module):
    def __init__(self, sampling_ratio):
        super().__init__()
        self.sampling_ratio = sampling_ratio

    def forward(self, feat, rois):
        from mmattn.deploy.onnx_ops import roi_align

        return roi_align(feat, rois, 7, 0.25, self.sampling_ratio)


@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_translation_equals_mmcv(tmp_path, sampling_ratio):
    """ONNX RoiAlign (half_pixel, avg) against mmcv's RoIAlign(aligned=True): RoIs inside,
    across the border and smaller than a bin, at two feature sizes."""
    from mmcv.ops import RoIAlign

    gen = torch.Generator().manual_seed(0)

    def make(n, h, w):
        feat = torch.randn(2, 4, h, w, generator=gen)
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 4.0 + 20, h * 4.0 + 20]) - 10
        wh = torch.rand(n, 2, generator=gen) * 60 + 0.3
        b = torch.randint(0, 2, (n, 1), generator=gen).float()
        return feat, torch.cat([b, xy, xy + wh], 1)

    mod = _RoIAlign(sampling_ratio)
    sess = _export_op(tmp_path, mod, make(20, 16, 20), ['feat', 'rois'], [(0, 2, 3), (0,)])
    ref_op = RoIAlign(7, 0.25, sampling_ratio, 'avg', aligned=True)
    for n, h, w in [(20, 16, 20), (37, 11, 25)]:
        feat, rois = make(n, h, w)
        ref = ref_op(feat, rois).numpy()
        got = sess.run(None, {'feat': feat.numpy(), 'rois': rois.numpy()})[0]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


class _NMS(torch.nn.Module):
    def forward(self, boxes, scores, classes):
        from mmattn.deploy.onnx_ops import nms_keep

        return nms_keep(boxes, scores, classes, 3, 0.5, 6)


def test_nms_keep_translation_equals_batched_nms(tmp_path):
    """ONNX NonMaxSuppression per class (a negative score excluded, at most 6 per class)
    against mmcv's batched_nms, image by image."""
    from mmcv.ops import batched_nms

    gen = torch.Generator().manual_seed(0)

    def make(n, k):
        xy = torch.rand(n, k, 2, generator=gen) * 100
        boxes = torch.cat([xy, xy + torch.rand(n, k, 2, generator=gen) * 40 + 1], -1)
        scores = torch.rand(n, k, generator=gen)
        scores[scores < 0.2] = -1
        return boxes, scores, torch.randint(0, 3, (n, k), generator=gen)

    sess = _export_op(tmp_path, _NMS(), make(2, 30), ['boxes', 'scores', 'classes'], [(0, 1)] * 3)
    for n, k in [(2, 30), (3, 200)]:
        boxes, scores, classes = make(n, k)
        got = sess.run(
            None, {'boxes': boxes.numpy(), 'scores': scores.numpy(), 'classes': classes.numpy()}
        )[0]
        assert got.shape == (n, k) and got.dtype == bool
        for i in range(n):
            idx = (scores[i] >= 0).nonzero().squeeze(1)
            _, kept = batched_nms(
                boxes[i, idx], scores[i, idx], classes[i, idx], dict(iou_threshold=0.5)
            )
            want = np.zeros(k, dtype=bool)
            for c in range(3):
                want[idx[kept[classes[i, idx[kept]] == c][:6]].numpy()] = True
            assert (got[i] == want).all()
            assert 0 < want.sum() < len(idx)  # some suppressed, some kept


def test_unsupported_detector_is_one_error():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/shapes/yolox-s_flatten-neck_shapes.py'))
    model, task = build_export_model(cfg)
    with pytest.raises(UserInputError, match='end2end supports anchor heads with sigmoid'):
        export_wrapper(model, task, 'end2end', (128, 128))


def _passes(row):
    return (
        row['matched'] == row['boxes']
        and row['extra'] == 0
        and row['min_iou'] >= 0.99
        and row.get('min_mask_iou', 1.0) >= 0.95
    )


def test_compare_detections_catches_errors(retinanet):
    """The matcher fails a box moved by 2% of its width, a changed label, a missing box and a
    mask cut in half."""
    model, path = retinanet
    img = _test_image(1, (160, 192), torch.Generator().manual_seed(0))
    ref = det_reference(model, img, False)
    got = run_onnx(path, img.numpy())
    assert _passes(compare_detections(ref, got))
    moved = [got[0].copy(), got[1]]
    top = moved[0][0, 0]
    top[[0, 2]] += 0.02 * (top[2] - top[0])
    assert not _passes(compare_detections(ref, moved))
    relabelled = [got[0], got[1].copy()]
    relabelled[1][0, 0] = (relabelled[1][0, 0] + 1) % 3
    assert not _passes(compare_detections(ref, relabelled))
    missing = [got[0].copy(), got[1]]
    missing[0][0, 0, 4] = 0
    assert not _passes(compare_detections(ref, missing))
    h, w = img.shape[2:]
    masks = np.zeros((1, got[0].shape[1], h, w), dtype=bool)
    masks[:, :, 10:50, 10:50] = True
    ref[0]['masks'] = np.zeros((len(ref[0]['scores']), h, w), dtype=bool)
    ref[0]['masks'][:, 10:50, 10:50] = True
    assert _passes(compare_detections(ref, [got[0], got[1], masks]))
    masks[0, 0, 10:30] = False
    assert not _passes(compare_detections(ref, [got[0], got[1], masks]))


def test_noise_floor_of_a_stable_detector_is_small(retinanet):
    """PyTorch's own movement under 1e-3 grey levels of noise, the yardstick the sweep uses
    for near-ties: on the spread RetinaNet it is tiny, with boxes to compare."""
    model, _ = retinanet
    img = _test_image(1, (160, 192), torch.Generator().manual_seed(0))
    row = detection_noise_floor(model, img, 0.3)
    assert row['boxes'] >= 10 and row['matched'] == row['boxes'], row
    assert row['min_iou'] >= 0.999 and row['max_coord_diff'] < 0.01, row


def test_cascade_refusals_do_not_send_the_user_back_and_forth():
    """Cascade R-CNN is exported by neither mode: each mode's one error line says so, instead
    of pointing to the other mode."""
    cfg = Config.fromfile(
        osp.join(
            ROOT,
            'configs/agent_attention/cascade-mask-rcnn_agent-swin-t_fpn_4conv1fc-giou_1x_coco.py',
        )
    )
    model, task = build_export_model(cfg)
    for mode in ('tensor', 'end2end'):
        with pytest.raises(UserInputError) as err:
            export_wrapper(model, task, mode, (128, 128))
        msg = str(err.value)
        assert 'CascadeRCNN' in msg and 'no ONNX export covers it' in msg, msg
        assert 'use --mode' not in msg, msg
