# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# Semantic FPN with BiFormer-S on ADE20K 512x512, 80k iterations, 8 GPUs x 4 images, ported
# from the official semantic_segmentation/configs/ade20k/sfpn.biformer_small.py (UniFormer's
# recipe): 8 regions per side, drop path 0.15, SyncBN in the backbone; AdamW lr 2e-4, wd 1e-4;
# cosine annealing over 80k iterations (min lr ratio 1e-8) with a 1000-iter linear warm-up
# from 0.1x; AMP with loss scale 512.
_base_ = [
    '../_base_/models/fpn.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmattn.BiFormer',
        arch='small',
        n_win=8,
        drop_path_rate=0.15,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/biformer_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale=512.0,
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(
        type='CosineAnnealingLR',
        T_max=80000,
        eta_min_ratio=1e-8,
        begin=0,
        end=80000,
        by_epoch=False,
    ),
]
