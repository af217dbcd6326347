# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Semantic FPN with FLatten-PVTv2-b0 on ADE20K 512x512, 40k iterations, 8 GPUs x 4 images.
# No official FLatten dense code; PVT v2's own official Semantic FPN recipe (whai362/PVTv2-Seg
# configs/sem_fpn/PVTv2/fpn_pvtv2_b{0..4}_ade20k_40k.py, on mmseg 0.13's ADE20K base of 4
# images per GPU, run on 8 GPUs): AdamW lr 2e-4, weight decay 1e-4 on every parameter, poly
# decay (power 0.9, min lr 0), no warm-up, 40k iterations of 32 images; drop path 0.1 (the
# PVT v2 segmentation backbones' value for every variant). PVT v1's own recipe is the same.
_base_ = [
    '../_base_/models/fpn.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmattn.FLattenPVTv2',
        arch='b0',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b0_mmattn.pth'),
    ),
    neck=dict(in_channels=[32, 64, 160, 256]),
    decode_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001),
    clip_grad=None,
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False)]
