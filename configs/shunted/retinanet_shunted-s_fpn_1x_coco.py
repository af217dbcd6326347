# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# RetinaNet + FPN with Shunted-S, COCO 1x (12 epochs, 8 GPUs x 2 images).
# PVT v2's retinanet_pvt_v2_*_fpn_1x_coco.py settings (the maintainer's stated base):
# AdamW lr 1e-4, weight decay 1e-4, FPN from C3 with extra convs on the input (mmdet's
# RetinaNet default), no gradient clipping.
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
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
    neck=dict(in_channels=[64, 128, 256, 512], start_level=1, add_extra_convs='on_input'),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001), clip_grad=None
)
