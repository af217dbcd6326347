"""A detector end to end for ONNX: raw image -> ``dets``, ``labels`` (and ``masks``).

What MMDetection 3.3's ``test_step`` computes on CPU, written with fixed-size tensors so that
``torch.export`` needs no data-dependent shape: every "keep the boxes that pass" step becomes
"give them score -1", and every variable-length list is padded to its limit (``nms_pre`` per
level, ``max_per_img``). NMS and RoIAlign are the custom ops of :mod:`.onnx_ops` (standard
``NonMaxSuppression`` and ``RoiAlign`` in the file). MMDetection's own modules compute the rest:
the backbone, neck and heads, the prior generators, the box coders' ``decode`` and the RoI
extractors' level mapping. tests/test_deploy compares the outputs with ``test_step``.

Outputs (MMDeploy's names and layout): ``dets`` ``(N, K, 5)`` x1, y1, x2, y2, score in input
pixels, highest score first; ``labels`` ``(N, K)`` int64; for Mask R-CNN ``masks``
``(N, K, H, W)`` bool at the input size. ``K`` is ``test_cfg``'s ``max_per_img``; rows past an
image's detections have score 0, a zero box, label -1 and an empty mask.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.utils.cli import UserInputError

from .onnx_ops import nms_keep, roi_align

__all__ = ['DetEnd2End']


def _pad_topk(scores: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``topk(k)`` along the last axis of ``(N, L)`` scores, padded with -1 so that ``L < k``
    works without a branch on the size; indices past ``L`` are clamped to ``L - 1``."""
    n, length = scores.shape
    padded = torch.cat([scores, scores.new_full((n, k), -1.0)], 1)
    vals, idx = padded.topk(k, dim=1)
    return vals, idx.clamp(max=length - 1)


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b]]`` for ``x`` ``(N, L, D)`` and ``idx`` ``(N, K)``."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _nms_cfg(cfg, where: str, other: str = 'use --mode tensor') -> float:
    nms = cfg.get('nms') or {}
    if nms.get('type', 'nms') != 'nms' or nms.get('class_agnostic', False):
        raise UserInputError(
            f'{where}.nms is {dict(nms)}; end2end export writes plain per-class NMS '
            f"(type='nms'); {other}"
        )
    return float(nms['iou_threshold'])


class DetEnd2End(nn.Module):
    """Raw ``(N, 3, H, W)`` float 0-255 image in the config's channel order -> ``dets``,
    ``labels`` (and ``masks``); see the module docstring.

    Supported: single-stage detectors whose head is an ``AnchorHead`` with sigmoid scores and
    ``BaseDenseHead``'s post-processing (RetinaNet; RTMDet's head qualifies too); Faster / Mask
    R-CNN (``RPNHead``,
    ``StandardRoIHead`` with an RoIAlign ``aligned=True`` extractor).

    Raises:
        UserInputError: Any other detector or post-processing setting.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from mmdet.models.dense_heads import AnchorHead, RPNHead
        from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
        from mmdet.models.roi_heads import StandardRoIHead

        self.model = model
        pre = model.data_preprocessor
        self.swap = bool(getattr(pre, '_channel_conversion', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('pixel_mean', pre.mean.detach().clone().float().view(1, -1, 1, 1))
            self.register_buffer('pixel_std', pre.std.detach().clone().float().view(1, -1, 1, 1))
        self.divisor = int(getattr(pre, 'pad_size_divisor', 1) or 1)
        self.pad_value = float(getattr(pre, 'pad_value', 0))
        name = type(model).__name__
        two_stage = getattr(model, 'with_rpn', False) or hasattr(model, 'roi_head')
        # tensor mode cannot take a two-stage detector either: never send the user back there
        other = (
            'no ONNX export covers it (tensor mode runs the RPN with data-dependent sizes)'
            if two_stage
            else 'use --mode tensor'
        )
        if getattr(model, 'with_rpn', False) and isinstance(
            getattr(model, 'roi_head', None), StandardRoIHead
        ):
            if not isinstance(model.rpn_head, RPNHead):
                raise UserInputError(f'{name}: end2end needs an RPNHead; {other}')
            self.kind = 'two_stage'
            roi = model.roi_head
            self.with_mask = bool(roi.with_mask)
            self.rpn_cfg = model.test_cfg.rpn
            self.rcnn_cfg = model.test_cfg.rcnn
            self.rpn_iou = _nms_cfg(self.rpn_cfg, 'test_cfg.rpn', other)
            self.rcnn_iou = _nms_cfg(self.rcnn_cfg, 'test_cfg.rcnn', other)
            self._check_extractor(roi.bbox_roi_extractor, name, other)
            if self.with_mask:
                self._check_extractor(roi.mask_roi_extractor, name, other)
                if not roi.share_roi_extractor and roi.mask_roi_extractor is None:
                    raise UserInputError(f'{name}: no mask RoI extractor; {other}')
                if float(self.rcnn_cfg.get('mask_thr_binary', 0.5)) < 0:
                    raise UserInputError(
                        f'{name}: test_cfg.rcnn.mask_thr_binary < 0 (soft masks) is not '
                        'exported; set it to 0.5'
                    )
            if getattr(roi.bbox_head, 'custom_cls_channels', False) or roi.with_shared_head:
                raise UserInputError(
                    f'{name}: a custom classifier or a shared RoI head is not exported; {other}'
                )
        elif hasattr(model, 'bbox_head') and not hasattr(model, 'roi_head'):
            head = model.bbox_head
            plain = (
                isinstance(head, AnchorHead)
                and head.use_sigmoid_cls
                and type(head)._predict_by_feat_single is BaseDenseHead._predict_by_feat_single
                and type(head).predict_by_feat is BaseDenseHead.predict_by_feat
                and not getattr(head.loss_cls, 'custom_cls_channels', False)
            )
            if not plain:
                raise UserInputError(
                    f'{name} with {type(head).__name__}: end2end supports anchor heads with '
                    "sigmoid scores and MMDetection's default post-processing (RetinaNet, "
                    'RTMDet) and Faster / Mask R-CNN; use --mode tensor'
                )
            self.kind = 'dense'
            self.with_mask = False
            self.dense_cfg = model.bbox_head.test_cfg
            self.dense_iou = _nms_cfg(self.dense_cfg, 'test_cfg')
        else:
            raise UserInputError(
                f'{name}: end2end supports RetinaNet-style detectors and Faster / Mask R-CNN; '
                + other
            )

    @staticmethod
    def _check_extractor(extractor, name: str, other: str = 'use --mode tensor') -> None:
        layer = extractor.roi_layers[0]
        if (
            type(layer).__name__ != 'RoIAlign'
            or not getattr(layer, 'aligned', False)
            or getattr(layer, 'pool_mode', 'avg') != 'avg'
            or getattr(extractor, 'gc_context', False)
        ):
            raise UserInputError(
                f"{name}: end2end needs RoIAlign(aligned=True, pool_mode='avg') RoI extractors "
                f'(ONNX RoiAlign half_pixel); {other}'
            )

    @property
    def output_names(self) -> List[str]:
        return ['dets', 'labels'] + (['masks'] if self.with_mask else [])

    # -- preprocessing -------------------------------------------------------------------
    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """``DetDataPreprocessor`` on a batch of same-size images: channel swap,
        normalisation, zero padding (``pad_value``) at the bottom and right to a multiple of
        ``pad_size_divisor``."""
        if self.swap:
            img = img.flip(1)
        x = (img - self.pixel_mean) / self.pixel_std if self.normalize else img
        h, w = x.shape[2:]
        d = self.divisor
        # (n + d - 1) // d: the exporter writes a negative floor division as a truncation
        hp, wp = (h + d - 1) // d * d, (w + d - 1) // d * d
        return F.pad(x, (0, wp - w, 0, hp - h), value=self.pad_value)

    def forward(self, img: torch.Tensor):
        hw = tuple(img.shape[2:])
        feats = self.model.extract_feat(self.preprocess(img))
        if self.kind == 'dense':
            return self._dense(feats, hw)
        boxes, scores = self._rpn(feats, hw)
        return self._rcnn(feats, boxes, scores, hw)

    # -- shared steps --------------------------------------------------------------------
    @staticmethod
    def _decode(coder, priors: torch.Tensor, deltas: torch.Tensor, hw) -> torch.Tensor:
        """``coder.decode`` on ``(N, L, 4)``: flattened, as MMDetection decodes one image."""
        n, length = deltas.shape[:2]
        priors = priors.reshape(-1, priors.shape[-1])
        out = coder.decode(priors, deltas.reshape(-1, deltas.shape[-1]), hw)
        return out.reshape(n, length, -1)

    @staticmethod
    def _drop_small(boxes: torch.Tensor, scores: torch.Tensor, cfg) -> torch.Tensor:
        """``_bbox_post_process``'s ``min_bbox_size`` filter as score -1."""
        min_size = cfg.get('min_bbox_size', -1)
        if min_size < 0:
            return scores
        w = boxes[..., 2] - boxes[..., 0]
        h = boxes[..., 3] - boxes[..., 1]
        return torch.where((w > min_size) & (h > min_size), scores, -1.0)

    @staticmethod
    def _nms_top(
        boxes: torch.Tensor,
        scores: torch.Tensor,
        classes: torch.Tensor,
        num_classes: int,
        iou: float,
        k: int,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batched_nms`` then the ``k`` best, per image: ``(boxes, scores, classes, valid)``
        ``(N, k, ...)``; rows past the kept boxes are not ``valid``."""
        keep = nms_keep(boxes, scores, classes, num_classes, iou, k)
        vals, idx = _pad_topk(torch.where(keep, scores, -1.0), k)
        valid = vals >= 0
        out_boxes = _gather_rows(boxes, idx) * valid.unsqueeze(-1)
        out_classes = torch.where(valid, classes.gather(1, idx), -1)
        return out_boxes, vals.clamp(min=0), out_classes, valid

    @staticmethod
    def _level_outputs(t: torch.Tensor, width: int) -> torch.Tensor:
        """``(N, A * width, H, W)`` -> ``(N, H * W * A, width)`` (MMDetection's order)."""
        return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, width)

    # -- single stage --------------------------------------------------------------------
    def _dense(self, feats, hw):
        head, cfg = self.model.bbox_head, self.dense_cfg
        cls_scores, bbox_preds = head(feats)
        priors = head.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_scores], dtype=cls_scores[0].dtype, device=feats[0].device
        )
        nms_pre, thr = int(cfg.get('nms_pre', -1)), float(cfg.get('score_thr', 0))
        num_classes = head.cls_out_channels
        level_boxes, level_scores, level_labels = [], [], []
        for cls, reg, pri in zip(cls_scores, bbox_preds, priors):
            n = cls.shape[0]
            scores = self._level_outputs(cls, num_classes).sigmoid().reshape(n, -1)
            deltas = self._level_outputs(reg, head.bbox_coder.encode_size)
            # filter_scores_and_topk: the nms_pre best of the (anchor, class) pairs > score_thr
            scores = torch.where(scores > thr, scores, -1.0)
            if nms_pre > 0:
                scores, idx = _pad_topk(scores, nms_pre)
            else:
                idx = torch.arange(scores.shape[1], device=scores.device).expand(n, -1)
            anchor = idx // num_classes
            level_labels.append(idx - anchor * num_classes)
            level_scores.append(scores)
            level_boxes.append(
                self._decode(
                    head.bbox_coder,
                    pri[anchor.reshape(-1)].reshape(n, -1, pri.shape[-1]),
                    _gather_rows(deltas, anchor),
                    hw,
                )
            )
        boxes = torch.cat(level_boxes, 1)
        scores = self._drop_small(boxes, torch.cat(level_scores, 1), cfg)
        boxes, scores, labels, _ = self._nms_top(
            boxes,
            scores,
            torch.cat(level_labels, 1),
            num_classes,
            self.dense_iou,
            int(cfg.max_per_img),
        )
        return torch.cat([boxes, scores.unsqueeze(-1)], -1), labels

    # -- two stage -----------------------------------------------------------------------
    def _rpn(self, feats, hw):
        """``RPNHead.predict``: per level the ``nms_pre`` best anchors, decoded, small boxes
        dropped, NMS per level, the ``max_per_img`` best: ``(N, P, 4)`` boxes and ``(N, P)``
        scores (-1 past the kept proposals)."""
        head, cfg = self.model.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head(feats)
        priors = head.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_scores], dtype=cls_scores[0].dtype, device=feats[0].device
        )
        nms_pre = int(cfg.get('nms_pre', -1))
        level_boxes, level_scores, level_ids = [], [], []
        for level, (cls, reg, pri) in enumerate(zip(cls_scores, bbox_preds, priors)):
            n = cls.shape[0]
            logits = self._level_outputs(cls, head.cls_out_channels)
            if head.use_sigmoid_cls:
                scores = logits.sigmoid().squeeze(-1)
            else:
                scores = logits.softmax(-1)[..., 0]
            deltas = self._level_outputs(reg, head.bbox_coder.encode_size)
            if nms_pre > 0:
                scores, idx = _pad_topk(scores, nms_pre)
                deltas = _gather_rows(deltas, idx)
                pri = pri[idx.reshape(-1)].reshape(n, -1, pri.shape[-1])
            else:
                pri = pri.expand(n, -1, -1)
            level_scores.append(scores)
            level_boxes.append(self._decode(head.bbox_coder, pri, deltas, hw))
            level_ids.append(torch.full_like(scores, level, dtype=torch.long))
        boxes = torch.cat(level_boxes, 1)
        scores = self._drop_small(boxes, torch.cat(level_scores, 1), cfg)
        boxes, scores, _, valid = self._nms_top(
            boxes,
            scores,
            torch.cat(level_ids, 1),
            len(cls_scores),
            self.rpn_iou,
            int(cfg.max_per_img),
        )
        return boxes, torch.where(valid, scores, -1.0)

    def _roi_features(self, extractor, feats, boxes: torch.Tensor) -> torch.Tensor:
        """``SingleRoIExtractor`` on ``(N, R, 4)`` boxes: each RoI pooled on every level with
        ONNX-exportable RoIAlign and the level of ``map_roi_levels`` selected."""
        n, r = boxes.shape[:2]
        batch = torch.arange(n, device=boxes.device, dtype=boxes.dtype)
        rois = torch.cat([batch.view(n, 1, 1).expand(n, r, 1), boxes], -1).reshape(-1, 5)
        levels = extractor.num_inputs
        target = extractor.map_roi_levels(rois, levels)
        out = None
        for i, layer in enumerate(extractor.roi_layers):
            pooled = roi_align(
                feats[i],
                rois,
                int(layer.output_size[0]),
                float(layer.spatial_scale),
                int(layer.sampling_ratio),
            )
            pick = (target == i).view(-1, 1, 1, 1)
            out = torch.where(pick, pooled, 0.0 if out is None else out)
        return out

    def _rcnn(self, feats, proposals: torch.Tensor, proposal_scores: torch.Tensor, hw):
        roi_head, cfg = self.model.roi_head, self.rcnn_cfg
        bbox_head = roi_head.bbox_head
        n, p = proposals.shape[:2]
        extractor = roi_head.bbox_roi_extractor
        cls_score, bbox_pred = bbox_head(
            self._roi_features(extractor, feats[: extractor.num_inputs], proposals)
        )
        num_classes = bbox_head.num_classes
        scores = F.softmax(cls_score, dim=-1)[:, :num_classes].reshape(n, p, num_classes)
        reg_classes = 1 if bbox_head.reg_class_agnostic else num_classes
        rois = proposals.reshape(-1, 1, 4).expand(-1, reg_classes, 4)
        boxes = bbox_head.bbox_coder.decode(
            rois.reshape(-1, 4), bbox_pred.reshape(-1, bbox_head.bbox_coder.encode_size), hw
        ).reshape(n, p, reg_classes, -1)
        boxes = boxes.expand(n, p, num_classes, boxes.shape[-1]).reshape(n, p * num_classes, -1)
        # multiclass_nms: every (proposal, class) pair with a score above score_thr
        thr = float(cfg.get('score_thr', 0))
        valid = (scores > thr) & (proposal_scores >= 0).unsqueeze(-1)
        scores = torch.where(valid, scores, -1.0).reshape(n, p * num_classes)
        labels = torch.arange(num_classes, device=scores.device).expand(n, p, -1).reshape(n, -1)
        boxes, scores, labels, valid = self._nms_top(
            boxes, scores, labels, num_classes, self.rcnn_iou, int(cfg.max_per_img)
        )
        dets = torch.cat([boxes, scores.unsqueeze(-1)], -1)
        if not self.with_mask:
            return dets, labels
        return dets, labels, self._masks(feats, boxes, labels, valid, hw)

    def _masks(self, feats, boxes, labels, valid, hw) -> torch.Tensor:
        """``FCNMaskHead.predict_by_feat`` on CPU: the label's mask, sigmoid, pasted into the
        image by ``grid_sample`` (``_do_paste_mask``) and thresholded at ``mask_thr_binary``."""
        roi_head = self.model.roi_head
        extractor = roi_head.mask_roi_extractor
        n, k = boxes.shape[:2]
        if roi_head.share_roi_extractor:
            extractor = roi_head.bbox_roi_extractor
        mask_feats = self._roi_features(extractor, feats[: extractor.num_inputs], boxes)
        preds = roi_head.mask_head(mask_feats)  # (N * K, C, m, m)
        if roi_head.mask_head.class_agnostic:
            preds = preds[:, :1]
        else:
            index = labels.clamp(min=0).reshape(-1, 1, 1, 1)
            preds = preds.gather(1, index.expand(-1, 1, *preds.shape[-2:]))
        pasted = paste_masks(preds.sigmoid(), boxes.reshape(-1, 4), hw)
        thr = float(self.rcnn_cfg.get('mask_thr_binary', 0.5))
        masks = (pasted >= thr) & valid.reshape(-1, 1, 1)
        return masks.reshape(n, k, *pasted.shape[-2:])


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, hw) -> torch.Tensor:
    """MMDetection's CPU paste (``_do_paste_mask`` with ``skip_empty=True``, one box per call)
    over the whole image: ``masks`` ``(R, 1, m, m)`` in ``[0, 1]`` and ``boxes`` ``(R, 4)`` ->
    ``(R, H, W)``.

    The grid and ``grid_sample`` are the same per pixel; pixels outside the box's window
    (``floor(x1) - 1`` to ``ceil(x2) + 1``, clipped to the image), which the CPU path never
    writes, are set to 0 (a large box's bilinear border would otherwise leak past it).
    """
    h, w = hw
    x0, y0, x1, y1 = boxes.split(1, dim=1)  # each (R, 1)
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32)
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32)
    gy = (ys + 0.5 - y0) / (y1 - y0) * 2 - 1  # (R, H)
    gx = (xs + 0.5 - x0) / (x1 - x0) * 2 - 1  # (R, W)
    gy = torch.where(torch.isinf(gy), 0.0, gy)
    gx = torch.where(torch.isinf(gx), 0.0, gx)
    r = boxes.shape[0]
    grid = torch.stack([gx[:, None, :].expand(r, h, w), gy[:, :, None].expand(r, h, w)], dim=3)
    out = F.grid_sample(masks.float(), grid, align_corners=False)[:, 0]
    inside_y = (ys >= (y0.floor() - 1).clamp(min=0)) & (ys < (y1.ceil() + 1).clamp(max=h))
    inside_x = (xs >= (x0.floor() - 1).clamp(min=0)) & (xs < (x1.ceil() + 1).clamp(max=w))
    return out * (inside_y[:, :, None] & inside_x[:, None, :])


def det_reference(model: nn.Module, img: torch.Tensor, with_mask: bool) -> List[Optional[dict]]:
    """``model.test_step`` on raw images ``(N, 3, H, W)`` (metainfo: the input size, scale 1):
    per image a dict of numpy ``bboxes``, ``scores``, ``labels`` (and ``masks``)."""
    from mmdet.structures import DetDataSample

    h, w = img.shape[2:]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))
    data = dict(
        inputs=[im for im in img],
        data_samples=[DetDataSample(metainfo=meta) for _ in range(img.shape[0])],
    )
    with torch.no_grad():
        res = model.test_step(data)
    out = []
    for r in res:
        p = r.pred_instances
        d = dict(bboxes=p.bboxes.numpy(), scores=p.scores.numpy(), labels=p.labels.numpy())
        if with_mask:
            d['masks'] = p.masks.numpy()
        out.append(d)
    return out


def _unit_logits(model: nn.Module, conv: nn.Module, img: torch.Tensor, with_mask: bool):
    """Scale ``conv``'s weight so that its outputs, less the bias, have standard deviation 1
    on ``img``: random weights with wide features give logits of 30 and more, sigmoid scores
    of exactly 1.0 in float32, and ties that any two runtimes order differently."""
    seen = []

    def grab(module, inputs, output):
        seen.append((output - module.bias.view(1, -1, 1, 1)).flatten())

    hook = conv.register_forward_hook(grab)
    try:
        det_reference(model, img, with_mask)
    finally:
        hook.remove()
    conv.weight.div_(torch.cat(seen).std())


def spread_det_scores(model: nn.Module, shape: Sequence[int] = (128, 160), seed: int = 1):
    """Give a random detector spread scores, so that boxes pass 0.3 and a comparison of
    detections is not vacuous. For checks with random weights only.

    MMDetection's inits score every box alike: the focal-loss prior (about 0.01) for sigmoid
    heads, about 1 / (classes + 1) for a softmax RoI head. Single-stage anchor heads get random
    class weights scaled to logits of standard deviation 1 on a test image around a bias of
    -1, and box weights N(0, 0.01); two-stage detectors get RPN class weights scaled to
    standard deviation 1, box weights N(0, 0.01), mask logits N(0, 0.3), and RoI class weights
    orthogonal to the mean RoI feature of a test image (so that no class wins everywhere),
    scaled to the features' spread, with the background's bias at -1.
    """
    from .onnx_export import _test_image

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if not hasattr(model, 'roi_head'):
            head = model.bbox_head
            cls = getattr(head, 'retina_cls', None) or head.conv_cls
            reg = getattr(head, 'retina_reg', None) or head.conv_reg
            cls.weight.normal_(0, 0.05)
            cls.bias.fill_(-1.0)
            reg.weight.normal_(0, 0.01)
            _unit_logits(model, cls, _test_image(2, shape, gen), False)
            return
        roi, head = model.roi_head, model.roi_head.bbox_head
        with_mask = getattr(roi, 'with_mask', False)
        model.rpn_head.rpn_cls.weight.normal_(0, 0.05)
        head.fc_reg.weight.normal_(0, 0.01)
        if with_mask:
            roi.mask_head.conv_logits.weight.normal_(0, 0.3)
            roi.mask_head.conv_logits.bias.zero_()
        _unit_logits(model, model.rpn_head.rpn_cls, _test_image(2, shape, gen), with_mask)
        seen = []
        hook = head.fc_cls.register_forward_hook(lambda m, i, o: seen.append(i[0]))
        try:
            det_reference(model, _test_image(2, shape, gen), with_mask)
        finally:
            hook.remove()
        feat = torch.cat(seen)
        mean = feat.mean(0)
        w = torch.randn(head.fc_cls.weight.shape, generator=gen)
        w -= (w @ mean)[:, None] * mean / mean.dot(mean)
        head.fc_cls.weight.copy_(w * 2 / (feat - mean).norm(dim=1).mean())
        head.fc_cls.bias.zero_()
        head.fc_cls.bias[-1] = -1.0


def detections_as_arrays(dets: List[dict], k: int, with_mask: bool) -> List[np.ndarray]:
    """``det_reference``'s detections laid out as the ONNX file's padded outputs."""
    n = len(dets)
    boxes = np.zeros((n, k, 5), np.float32)
    labels = -np.ones((n, k), np.int64)
    out = [boxes, labels]
    if with_mask:
        hw = next((d['masks'].shape[1:] for d in dets if len(d['masks'])), (0, 0))
        out.append(np.zeros((n, k, *hw), bool))
    for i, d in enumerate(dets):
        m = min(len(d['scores']), k)
        boxes[i, :m, :4], boxes[i, :m, 4], labels[i, :m] = (
            d['bboxes'][:m],
            d['scores'][:m],
            d['labels'][:m],
        )
        if with_mask and m:
            out[2][i, :m] = d['masks'][:m]
    return out


def detection_noise_floor(
    model: nn.Module, img: torch.Tensor, score_thr: float, draws: int = 4, sigma: float = 1e-3
) -> dict:
    """How far ``test_step``'s own detections move when ``img`` (0-255) gets Gaussian noise of
    ``sigma`` grey levels, far below one level of an 8-bit image: the worst of ``draws``
    :func:`compare_detections` against the clean image. A model sitting on near-ties (NMS,
    top-k cut-offs, masks at the threshold) moves by this much under any float32 rounding, so
    an ONNX file that differs by no more differs by rounding, not by a wrong graph."""
    with_mask = bool(getattr(model, 'with_mask', False))
    ref = det_reference(model, img, with_mask)
    k = max(max(len(d['scores']) for d in ref), 1)
    gen = torch.Generator().manual_seed(1)
    worst = None
    for _ in range(draws):
        noisy = img + torch.randn(img.shape, generator=gen) * sigma
        got = detections_as_arrays(det_reference(model, noisy, with_mask), k, with_mask)
        row = compare_detections(ref, got, score_thr)
        if worst is None:
            worst = row
        else:
            worst['min_iou'] = min(worst['min_iou'], row['min_iou'])
            worst['max_coord_diff'] = max(worst['max_coord_diff'], row['max_coord_diff'])
            worst['matched'] = min(worst['matched'], row['matched'])
            worst['extra'] = max(worst['extra'], row['extra'])
            if 'min_mask_iou' in row:
                worst['min_mask_iou'] = min(worst['min_mask_iou'], row['min_mask_iou'])
    return worst


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(n, 4)`` with every box of ``b`` ``(m, 4)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0, None).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def compare_detections(
    ref: List[dict], got: Sequence[np.ndarray], score_thr: float = 0.3, tol: float = 1e-3
) -> dict:
    """Match the ONNX file's ``(dets, labels[, masks])`` with ``test_step``'s detections.

    Per image, every reference box scoring above ``score_thr`` is matched to a distinct ONNX
    box of the same label (the one of highest IoU among those scoring above
    ``score_thr - tol``, the tolerance keeping a box on the threshold from flipping);
    an ONNX box above ``score_thr + tol`` left unmatched counts as ``extra``.

    Returns:
        dict: ``boxes`` (reference boxes above the threshold), ``matched``, ``extra``,
        ``min_iou`` (worst box IoU of a matched pair, 1 if none), ``max_coord_diff`` (largest
        coordinate difference of a matched pair, pixels: IoU alone fails a box clipped to a
        sliver 0.03 px high for a 3e-4 px rounding difference), ``min_mask_iou`` (with masks;
        two empty masks count as equal).
    """
    dets, labels = got[0], got[1]
    masks = got[2] if len(got) > 2 else None
    boxes = matched = extra = 0
    min_iou = min_mask_iou = 1.0
    max_coord_diff = 0.0
    for i, r in enumerate(ref):
        keep = r['scores'] > score_thr
        order = np.argsort(-r['scores'][keep], kind='stable')
        rb, rl = r['bboxes'][keep][order], r['labels'][keep][order]
        rm = r['masks'][keep][order] if masks is not None else None
        cand = np.nonzero(dets[i, :, 4] > score_thr - tol)[0]
        free = np.ones(len(cand), dtype=bool)
        iou = _iou_matrix(rb, dets[i, cand, :4]) if len(cand) else np.zeros((len(rb), 0))
        boxes += len(rb)
        for j in range(len(rb)):
            ok = free & (labels[i, cand] == rl[j])
            if not ok.any():
                min_iou = 0.0
                continue
            best = int(np.argmax(np.where(ok, iou[j], -1)))
            free[best] = False
            matched += 1
            min_iou = min(min_iou, float(iou[j, best]))
            diff = np.abs(rb[j] - dets[i, cand[best], :4]).max()
            max_coord_diff = max(max_coord_diff, float(diff))
            if rm is not None:
                a, b = rm[j].astype(bool), masks[i, cand[best]].astype(bool)
                union = (a | b).sum()
                min_mask_iou = min(min_mask_iou, float((a & b).sum() / union) if union else 1.0)
        extra += int((free & (dets[i, cand, 4] > score_thr + tol)).sum())
    out = dict(
        boxes=boxes, matched=matched, extra=extra, min_iou=min_iou, max_coord_diff=max_coord_diff
    )
    if masks is not None:
        out['min_mask_iou'] = min_mask_iou
    return out
