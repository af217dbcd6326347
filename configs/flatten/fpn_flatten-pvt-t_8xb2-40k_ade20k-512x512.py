# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Semantic FPN with FLatten-PVT-T on ADE20K 512x512, 40k iterations, 8 GPUs x 2 images.
# No official dense code; the schedule of the authors' official Agent-PVT Semantic FPN configs
# (LeapLabTHU/Agent-Attention downstream/segmentation/configs/agent_pvt/fpn_agent_pvt_*.py):
# AdamW lr 2e-4, weight decay 1e-4 on every parameter, poly decay (power 0.9, min lr 0), no
# warm-up, 40k iterations of 16 images (8 x 2). PVT v1's own Semantic FPN recipe has the same
# optimizer and length but 32 images per iteration (8 x 4). Drop path 0.1 (ImageNet config).
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
        type='mmattn.FLattenPVT',
        arch='tiny',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001),
    clip_grad=None,
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False)]
