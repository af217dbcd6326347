# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# UperNet with BiFormer-S on ADE20K 512x512, 160k iterations, 8 GPUs x 2 images, ported from
# the official semantic_segmentation/configs/ade20k/upernet.biformer_small.py: 8 regions per
# side, drop path 0.3, SyncBN in the backbone (the official wrapper converts its BatchNorms);
# AdamW lr 6e-5, betas (0.9, 0.999), wd 0.01, no decay on norms; 1500-iter linear warm-up
# (ratio 1e-6) then poly (power 1, min lr 0); AMP with loss scale 512.
_base_ = [
    '../_base_/models/upernet.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmattn.BiFormer',
        arch='small',
        n_win=8,
        drop_path_rate=0.3,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/biformer_s_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150),
)
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale=512.0,
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
