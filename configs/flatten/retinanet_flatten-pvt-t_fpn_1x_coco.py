# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVT-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# No official dense code; PVT v1's official RetinaNet recipe (the paper follows PVT):
# AdamW lr 1e-4, weight decay 1e-4 on every parameter, no gradient clipping, 1x step schedule
# (8, 11) with 500-iter warm-up; FPN from C3 with extra convs on the input (mmdet's RetinaNet
# default). Drop path 0.1 = the ImageNet config (cfgs/flatten_pvt_t.yaml).
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
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
    neck=dict(in_channels=[64, 128, 320, 512], start_level=1, add_extra_convs='on_input'),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001), clip_grad=None
)
