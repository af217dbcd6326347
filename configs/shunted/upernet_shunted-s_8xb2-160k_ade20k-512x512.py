# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# UperNet with Shunted-S on ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# No official dense code; the paper compares with Swin / Focal under UperNet 160k, whose
# protocol (Swin's upernet configs) is used: AdamW lr 6e-5, betas (0.9, 0.999), weight decay
# 0.01 (none on norms), 1500-iter linear warm-up, then poly decay (power 1.0, min lr 0);
# auxiliary FCN head on stage 3 (256 channels).
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
        type='mmattn.ShuntedTransformer',
        arch='small',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_s_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150),
)
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
