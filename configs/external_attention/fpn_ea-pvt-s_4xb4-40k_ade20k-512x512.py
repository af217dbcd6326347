# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# Semantic FPN on ADE20K with EA-PVT-S: the shared PVT v1 skeleton with multi-head external
# attention as its token mixer. No ImageNet weights exist for it (the paper has no EA pyramid):
# this trains from scratch unless you set init_cfg to an ImageNet run of your own.
# Recipe: the schedule of the official Agent-PVT Semantic FPN configs (LeapLabTHU/Agent-Attention
# downstream/segmentation/configs/agent_pvt/fpn_agent_pvt_*_12-16-28-28.py), which the FLatten-PVT
# recipes follow too, so the PVT-skeleton pyramids compare on one schedule: AdamW lr 2e-4, weight
# decay 1e-4 on every parameter, poly decay (power 0.9, min lr 0), no warm-up, 40k iterations of
# 16 images (here 4 GPUs x 4; official 8 x 2). PVT v1's own recipe has the same optimizer and
# length with 32 images per iteration (8 x 4).
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
        type='mmattn.EAPVT',
        arch='small',
        attn_cfgs=dict(type='MultiHeadExternalAttention', expand_ratio=4, num_slots=64),
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=None,
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001),
    clip_grad=None,
)
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)]
