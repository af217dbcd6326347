# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVTv2-b0, COCO 1x (12 epochs, 8 GPUs x 2 images).
# No official FLatten dense code; PVT v2's own official RetinaNet recipe (whai362/PVT, branch
# v2, detection/configs/retinanet_pvt_v2_b0_fpn_1x_coco.py; mmdet's
# configs/pvt/retinanet_pvtv2-b0_fpn_1x_coco.py agrees): AdamW lr 1e-4, weight decay 1e-4 on
# every parameter, no gradient clipping, 1x step schedule (8, 11) with 500-iter warm-up; FPN
# from C3 with extra convs on the input; drop path 0.1 (PVT v2's detection backbones).
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
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
    neck=dict(in_channels=[32, 64, 160, 256], start_level=1, add_extra_convs='on_input'),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001), clip_grad=None
)
