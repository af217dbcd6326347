# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Mask R-CNN + FPN with FLatten-PVTv2-b0, COCO 1x (12 epochs, 8 GPUs x 2 images).
# The official FLatten repo has no dense code; this is PVT v2's own official Mask R-CNN recipe
# (whai362/PVT, branch v2, detection/configs/mask_rcnn_pvt_v2_b0_fpn_1x_coco.py): AdamW lr 2e-4,
# weight decay 1e-4 on every parameter, no gradient clipping, mmdet's 1x step schedule (8, 11)
# with 500-iter linear warm-up, single-scale 1333x800 training, drop path 0.1 (the PVT v2
# detection backbones' value for every variant).
# Backbone weights: convert the official ImageNet checkpoint first (see README.md; only b0 is
# released).
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.FLattenPVTv2',
        arch='b0',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b0_mmattn.pth'),
    ),
    neck=dict(in_channels=[32, 64, 160, 256]),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, weight_decay=0.0001), clip_grad=None
)
