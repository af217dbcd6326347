# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# Mask R-CNN + FPN with Shunted-S, COCO 1x (12 epochs, 8 GPUs x 2 images).
# No official dense code exists; the maintainer states detection followed PVT v2, so the
# optimizer is PVT v2's mask_rcnn_pvt_v2_*_fpn_1x_coco.py: AdamW lr 2e-4, weight decay 1e-4,
# no gradient clipping; mmdet's 1x step schedule (8, 11) with 500-iter linear warm-up.
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
        type='mmattn.ShuntedTransformer',
        arch='small',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, weight_decay=0.0001), clip_grad=None
)
