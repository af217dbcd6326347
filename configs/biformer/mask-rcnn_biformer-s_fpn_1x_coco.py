# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# Mask R-CNN + FPN with BiFormer-S, COCO 1x (12 epochs, 8 GPUs x 2 images), ported from the
# official object_detection/configs/coco/maskrcnn.1x.biformer_small.py: 16 regions per side,
# drop path 0.2, stem/downsample BatchNorms in eval (BiFormer_mm default norm_eval=True);
# AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05, no decay on norms; steps at 8 and 11 with
# mmdet's 500-iter warm-up; AMP (mmcv fp16 with its default static loss scale 512).
# Backbone weights: convert the official ImageNet checkpoint first (see README.md).
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.BiFormer',
        arch='small',
        n_win=16,
        drop_path_rate=0.2,
        norm_eval=True,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/biformer_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale=512.0,
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.0)}),
)
