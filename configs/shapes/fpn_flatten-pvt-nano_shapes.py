# Semantic FPN on the bundled shapes set with a narrow, one-block-per-stage FLatten-PVT
# (focused linear attention in every stage, as FLatten-PVT-T), from scratch. Pretraining size
# 128 = the shapes images, so the positional encodings are used at their own size.
_base_ = './fpn_r18_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.FLattenPVT',
        arch=dict(
            embed_dims=[32, 64, 128, 256],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            depths=[1, 1, 1, 1],
            sr_ratios=[8, 4, 2, 1],
        ),
        pretrain_img_size=128,
        drop_path_rate=0.0,
        init_cfg=None,
    ),
    neck=dict(in_channels=[32, 64, 128, 256]),
)
# Short warm-up: the test suite trains this config for ~20 iterations only.
max_iters = 400
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, begin=5, end=max_iters, eta_min=1e-5, by_epoch=False),
]
# All validation/test images by default; the key exists so a quick run can pass
# `--cfg-options test_dataloader.dataset.indices=24` (tools reject keys a config lacks).
val_dataloader = dict(dataset=dict(indices=None))
test_dataloader = dict(dataset=dict(indices=None))
