# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Mask R-CNN + FPN with FLatten-PVT-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# The official FLatten repo has no dense code; the paper follows PVT for COCO, so this is
# PVT v1's official Mask R-CNN recipe (also used by the authors' Agent-Attention dense code):
# AdamW lr 2e-4, weight decay 1e-4 on every parameter, no gradient clipping, mmdet's 1x step
# schedule (8, 11) with 500-iter linear warm-up, single-scale 1333x800 training.
# Drop path 0.1 = the ImageNet config (cfgs/flatten_pvt_t.yaml). Linear attention needs no
# dense-specific knob: the positional encodings are resized to each input (see README.md).
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
        type='mmattn.FLattenPVT',
        arch='tiny',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, weight_decay=0.0001), clip_grad=None
)
