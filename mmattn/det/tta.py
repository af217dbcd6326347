"""Test-time augmentation for detectors that also predict masks (Mask R-CNN, Cascade Mask R-CNN).

MMDetection 3.3's ``DetTTAModel`` merges the boxes of the augmented views (boxes flipped back,
then class-wise NMS) and refuses predictions with masks. Here the masks ride along: each view's
masks are at the original image size already (``rescale=True``), so a flipped view's masks are
flipped back and the merged prediction keeps the mask of every box that survives the NMS.
Without masks this is exactly ``DetTTAModel``.
"""

from typing import List

import torch
from mmcv.ops import batched_nms
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmattn.registry import MODELS


def flip_masks_back(masks: torch.Tensor, direction: str) -> torch.Tensor:
    """Undo a ``RandomFlip`` of ``direction`` on ``(N, H, W)`` masks."""
    dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}
    if direction not in dims:
        raise ValueError(f'unknown flip direction {direction!r}; expected one of {list(dims)}')
    return masks.flip(dims[direction])


@MODELS.register_module()
class InstanceSegTTAModel(DetTTAModel):
    """``DetTTAModel`` that merges instance masks too.

    Use as ``tta_model = dict(type='mmattn.InstanceSegTTAModel', tta_cfg=dict(nms=dict(
    type='nms', iou_threshold=0.5), max_per_img=100))`` with ``mmattn.det`` imported.

    Args:
        tta_cfg (dict): ``nms`` (class-wise NMS over all views' boxes) and ``max_per_img``.
        **kwargs: :class:`mmengine.model.BaseTTAModel` arguments (``module``).
    """

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        if data_samples[0].pred_instances.get('masks', None) is None:
            return super()._merge_single_sample(data_samples)
        preds = [s.pred_instances for s in data_samples]
        bboxes, scores = self.merge_aug_bboxes(
            [p.bboxes for p in preds], [p.scores for p in preds], [s.metainfo for s in data_samples]
        )
        labels = torch.cat([p.labels for p in preds])
        masks = torch.cat(
            [
                flip_masks_back(p.masks, s.metainfo['flip_direction'])
                if s.metainfo.get('flip')
                else p.masks
                for p, s in zip(preds, data_samples)
            ]
        )
        if bboxes.numel() == 0:
            return data_samples[0]
        dets, keep = batched_nms(bboxes, scores, labels, self.tta_cfg['nms'])
        top = self.tta_cfg['max_per_img']
        keep = keep[:top]
        merged = InstanceData()
        merged.bboxes = dets[:top, :-1]
        merged.scores = dets[:top, -1]
        merged.labels = labels[keep]
        merged.masks = masks[keep]
        result = data_samples[0]
        result.pred_instances = merged
        return result
