# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# UperNet 160k on ADE20K with EA-PVT-S (from scratch; no official weights). Recipe: the
# transformer UperNet setting of Swin / PVT-based ADE20K code (AdamW lr 6e-5, wd 0.01, no decay
# on norms and position embeddings, 1500 linear warm-up iterations, poly 1.0, 160k, 16
# images/iter).
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
        type='mmattn.EAPVT',
        arch='small',
        attn_cfgs=dict(type='MultiHeadExternalAttention', expand_ratio=4, num_slots=64),
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=None,
    ),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150),
)
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys=dict(pos_embed=dict(decay_mult=0.0), norm=dict(decay_mult=0.0))),
    clip_grad=None,
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
