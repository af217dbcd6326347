# Semantic FPN on ADE20K with EA-PVT-S: the shared PVT v1 skeleton with multi-head external
# attention as its token mixer. No ImageNet weights exist for it (the paper has no EA pyramid):
# this trains from scratch unless you set init_cfg to an ImageNet run of your own.
# Recipe: PVT v1's Semantic FPN setting (AdamW lr 1e-4, wd 1e-4, poly 0.9, 40k iterations,
# 16 images/iter), which the other families' pyramids use too.
_base_ = [
    '../_base_/models/fpn.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True, type='mmattn.EAPVT', arch='small', expand_ratio=4, num_slots=64,
        drop_path_rate=0.1, out_indices=(0, 1, 2, 3), init_cfg=None),
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150))
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)
]
