# Mask R-CNN on the bundled shapes set, sized for 2 CPU cores (the demo and the e2e tests).
# A narrow ResNet-18 trained from scratch; attention-backbone siblings override `backbone`.
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/shapes_instance.py',
    '../_base_/default_runtime_det.py',
]
width = 128  # FPN / head width (256 in the COCO recipes)
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None,
    ),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=width),
    rpn_head=dict(
        in_channels=width, feat_channels=width, anchor_generator=dict(scales=[4])
    ),  # objects are 16-60 px in 128 px images
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=3),
    ),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=600, max_per_img=300), rcnn=dict(sampler=dict(num=128))
    ),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=50)),
)

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0, norm_type=2),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=2),
)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
