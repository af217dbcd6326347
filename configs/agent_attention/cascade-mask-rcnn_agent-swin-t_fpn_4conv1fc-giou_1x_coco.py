# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Cascade Mask R-CNN + FPN with Agent-Swin-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Official dense code (downstream/detection, configs/agent_swin/agent_swin_t_crcnn_1x_9-12-14-7.py
# over _base_/models/cascade_mask_rcnn_swin_fpn.py): mmdet's Cascade Mask R-CNN whose three box
# heads are 4conv1fc heads (4 shared 3x3 convs of 256 with SyncBN, one fc of 1024) regressing
# decoded boxes with GIoU loss (weight 10), class-specific; the rest of the detector (RPN,
# assigners, samplers, mask head, test settings) is mmdet's Cascade Mask R-CNN R-50 FPN. The
# backbone, augmentation and optimizer are the Agent-Swin-T Mask R-CNN recipe's: AdamW lr 1e-4,
# wd 0.05 except norms / relative position tables / the six agent biases, no clipping; 1x step
# schedule (8, 11) with 500-iter linear warm-up; DETR-style multi-scale + crop augmentation
# (used at 1x too); agent grids 9-12-14-7; drop path 0.1; no mixed precision.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
custom_imports = dict(
    imports=['mmattn.models', 'mmattn.det', 'mmattn.safe_loading'], allow_failed_imports=False
)
norm_cfg = dict(type='SyncBN', requires_grad=True)


# One 4conv1fc GIoU box head per cascade stage; the stages differ in their target stds.
box_head = dict(
    type='ConvFCBBoxHead',
    num_shared_convs=4,
    num_shared_fcs=1,
    in_channels=256,
    conv_out_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=80,
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[0.0, 0.0, 0.0, 0.0],
        target_stds=[0.1, 0.1, 0.2, 0.2],
    ),
    reg_class_agnostic=False,
    reg_decoded_bbox=True,
    norm_cfg=norm_cfg,
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0),
)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.AgentSwin',
        arch='tiny',
        agent_shapes=[(9, 9), (12, 12), (14, 14), (7, 7)],
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
    roi_head=dict(
        bbox_head=[
            box_head,
            dict(
                box_head,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0.0, 0.0, 0.0, 0.0],
                    target_stds=[0.05, 0.05, 0.1, 0.1],
                ),
            ),
            dict(
                box_head,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0.0, 0.0, 0.0, 0.0],
                    target_stds=[0.033, 0.033, 0.067, 0.067],
                ),
            ),
        ]
    ),
)

# Augmentation of the official config (from DETR / Sparse R-CNN), in mmdet 3.x terms.
scales = [
    (480, 1333),
    (512, 1333),
    (544, 1333),
    (576, 1333),
    (608, 1333),
    (640, 1333),
    (672, 1333),
    (704, 1333),
    (736, 1333),
    (768, 1333),
    (800, 1333),
]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=scales, keep_ratio=True)],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 1333), (500, 1333), (600, 1333)],
                    keep_ratio=True,
                ),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True,
                ),
                dict(type='RandomChoiceResize', scales=scales, keep_ratio=True),
            ],
        ],
    ),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=None,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'an_bias': dict(decay_mult=0.0),
            'na_bias': dict(decay_mult=0.0),
            'ah_bias': dict(decay_mult=0.0),
            'aw_bias': dict(decay_mult=0.0),
            'ha_bias': dict(decay_mult=0.0),
            'wa_bias': dict(decay_mult=0.0),
        }
    ),
)
