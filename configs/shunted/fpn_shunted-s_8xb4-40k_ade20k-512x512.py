# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# Semantic FPN with Shunted-S on ADE20K 512x512, PVT / PVT v2 protocol (the maintainer's
# stated base; PVT segmentation/configs/sem_fpn/PVT/fpn_pvt_*_ade20k_40k.py): 8 GPUs x 4
# images, 40k iterations, AdamW lr 2e-4 (1e-4 x 2 for 8 GPUs), weight decay 1e-4, poly decay
# (power 0.9, min lr 0), no warm-up. PVT tests with an "AlignResize" to multiples of 32; here
# mmseg's Resize (2048, 512) keep-ratio with the preprocessor's padding.
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
        type='mmattn.ShuntedTransformer',
        arch='small',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
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
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
