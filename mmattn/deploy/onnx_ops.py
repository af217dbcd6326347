"""Detection post-processing ops that export to standard ONNX operators.

Each op is a ``torch.library`` custom op: in eager mode it runs mmcv's kernel (so that the
exported graph's reference is MMDetection's own computation), and ``export_onnx`` writes it as
the standard ONNX operator through ``torch.onnx.export(custom_translation_table=...)``:

- ``mmattn::roi_align`` -> ``RoiAlign`` (opset 16+, ``coordinate_transformation_mode=
  'half_pixel'``, ``mode='avg'``): mmcv's ``RoIAlign(aligned=True, pool_mode='avg')``;
- ``mmattn::nms_keep`` -> ``NonMaxSuppression`` per class, then ``ScatterND``: mmcv's
  ``batched_nms`` (per-class NMS) as a keep mask.

Stock onnxruntime runs both; tests/test_deploy checks each translation against the eager op.
"""

from typing import Dict

import torch

__all__ = ['roi_align', 'nms_keep', 'ONNX_TRANSLATIONS']


@torch.library.custom_op('mmattn::roi_align', mutates_args=())
def roi_align(
    feat: torch.Tensor, rois: torch.Tensor, out_size: int, spatial_scale: float, sampling_ratio: int
) -> torch.Tensor:
    """mmcv's ``roi_align(aligned=True, pool_mode='avg')`` of ``rois`` ``(R, 5)`` (batch index,
    x1, y1, x2, y2 in input pixels) on ``feat`` ``(N, C, H, W)`` -> ``(R, C, out, out)``."""
    from mmcv.ops import roi_align as mmcv_roi_align

    return mmcv_roi_align(
        feat, rois, (out_size, out_size), spatial_scale, sampling_ratio, 'avg', True
    )


@roi_align.register_fake
def _roi_align_fake(feat, rois, out_size, spatial_scale, sampling_ratio):
    return feat.new_empty(rois.shape[0], feat.shape[1], out_size, out_size)


def _onnx_roi_align(feat, rois, out_size: int, spatial_scale: float, sampling_ratio: int):
    from onnxscript import opset18 as op  # a test/export dependency, imported when exporting

    batch = op.Cast(op.Squeeze(op.Slice(rois, [0], [1], [1]), [1]), to=7)  # int64
    boxes = op.Slice(rois, [1], [5], [1])
    # half_pixel: the -0.5 pixel offset of mmcv's aligned=True, no minimum RoI size
    return op.RoiAlign(
        feat,
        boxes,
        batch,
        coordinate_transformation_mode='half_pixel',
        mode='avg',
        output_height=out_size,
        output_width=out_size,
        sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
    )


@torch.library.custom_op('mmattn::nms_keep', mutates_args=())
def nms_keep(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int,
    iou_threshold: float,
    max_per_class: int,
) -> torch.Tensor:
    """Per image and per class greedy NMS, as a keep mask.

    Args:
        boxes (Tensor): ``(N, K, 4)`` x1, y1, x2, y2.
        scores (Tensor): ``(N, K)``; a negative score takes no part (padding, filtered out).
        classes (Tensor): ``(N, K)`` int64 in ``[0, num_classes)``; boxes of different classes
            never suppress each other (mmcv's ``batched_nms``).
        num_classes (int): Number of classes.
        iou_threshold (float): A box whose IoU with a kept box of its class is larger is
            suppressed.
        max_per_class (int): At most this many boxes kept per image and class (the highest).

    Returns:
        Tensor: ``(N, K)`` bool.
    """
    from mmcv.ops import batched_nms

    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for i in range(scores.shape[0]):
        idx = (scores[i] >= 0).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        _, kept = batched_nms(
            boxes[i, idx],
            scores[i, idx],
            classes[i, idx],
            dict(type='nms', iou_threshold=iou_threshold, split_thr=1 << 62),
        )
        for c in range(num_classes):  # at most max_per_class per class, highest first
            of_class = kept[classes[i, idx[kept]] == c][:max_per_class]
            keep[i, idx[of_class]] = True
    return keep


@nms_keep.register_fake
def _nms_keep_fake(boxes, scores, classes, num_classes, iou_threshold, max_per_class):
    return torch.empty(scores.shape, dtype=torch.bool, device=scores.device)


def _onnx_nms_keep(
    boxes, scores, classes, num_classes: int, iou_threshold: float, max_per_class: int
):
    from onnxscript import opset18 as op

    # (N, C, K) class scores: a box scores only in its own class, -1 (excluded) elsewhere
    cls = op.Unsqueeze(classes, [1])
    ids = op.Reshape(op.Range(op.Constant(value_int=0), num_classes, 1), [1, -1, 1])
    per_class = op.Where(op.Equal(cls, ids), op.Unsqueeze(scores, [1]), op.CastLike(-1.0, scores))
    selected = op.NonMaxSuppression(
        boxes,
        per_class,
        op.Constant(value_ints=[max_per_class]),
        op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[-0.5]),  # negative scores take no part
        center_point_box=0,
    )  # (S, 3): image, class, box
    where = op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)
    ones = op.Expand(op.Constant(value_int=1), op.Slice(op.Shape(selected), [0], [1]))
    zeros = op.Expand(op.Constant(value_int=0), op.Shape(scores))
    return op.Cast(op.ScatterND(zeros, where, ones), to=9)  # bool


#: ``custom_translation_table`` for ``torch.onnx.export``.
ONNX_TRANSLATIONS: Dict[object, object] = {
    torch.ops.mmattn.roi_align.default: _onnx_roi_align,
    torch.ops.mmattn.nms_keep.default: _onnx_nms_keep,
}
