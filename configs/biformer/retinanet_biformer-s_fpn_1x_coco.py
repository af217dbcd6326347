# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# RetinaNet + FPN with BiFormer-S, COCO 1x (8 GPUs x 2 images), ported from the official
# object_detection/configs/coco/retinanet.1x.biformer_small.py: 16 regions per side, drop path
# 0.2, norm_eval=True; FPN from stage 2 (start_level=1) with extra convs on the input;
# AdamW lr 1e-4, wd 1e-4 (no paramwise rules); mmdet 1x steps (8, 11); AMP, loss scale 512;
# find_unused_parameters as officially (the stage-1 output norm feeds nothing).
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.BiFormer',
        arch='small',
        n_win=16,
        drop_path_rate=0.2,
        norm_eval=True,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/biformer_s_mmattn.pth'),
    ),
    neck=dict(
        in_channels=[64, 128, 256, 512], start_level=1, add_extra_convs='on_input', num_outs=5
    ),
)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale=512.0,
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001),
)
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
