# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Mask R-CNN + FPN with Agent-CSWin-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Backbone: LeapLabTHU/Agent-Attention agent_transformer/models/agent_cswin.py,
# cfgs/agent_cswin_t.yaml (letters AABB: global agent attention (agents 9/16, the official
# pretrained grids) in stages 1-2, CSWin stripes 7 in stage 3, global in stage 4).
# microsoft/CSWin-Transformer releases no detection configs: the CSWin paper (arXiv 2107.00652,
# sec. 4.2) follows Swin's Mask R-CNN protocol, i.e. Swin's official config
# (mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_1x_coco.py): AdamW lr 1e-4,
# betas (0.9, 0.999), weight decay 0.05 except on norms, batch 16, DETR-style multi-scale +
# crop augmentation, step schedule with 500-iter linear warm-up. Drop path per variant as
# CSWin's dense configs (T 0.3, S 0.4, B 0.6: segmentation/configs/cswin/upernet_cswin_*.py).
# Agent biases without weight decay, as Agent-Attention's dense configs for Agent-Swin.
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.AgentCSWin',
        arch='tiny',  # default attn_cfgs: the official layout
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        out_norms=True,  # CSWin's dense protocol: a LayerNorm on each output
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_cswin_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
)

# Swin's multi-scale + crop augmentation (from DETR), in mmdet 3.x terms.
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
