# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-Swin-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Official dense code (downstream/detection, configs/agent_swin/agent_swin_t_mrcnn_1x_9-12-14-7.py):
# AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05 except on norms, the relative position
# tables and the six agent biases (paramwise custom keys below), no gradient clipping; 1x step
# schedule (8, 11) with 500-iter linear warm-up; DETR-style multi-scale + crop augmentation;
# agent grids 9-12-14-7 (downstream_agent_shapes); drop path 0.1.
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
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
