# Semantic FPN on the bundled shapes set with a narrow BiFormer (one or two blocks per stage,
# BRA with 4 regions per side in stages 1-3, global attention + LePE in stage 4), from scratch.
_base_ = './fpn_r18_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.BiFormer',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 2, 1], topks=[1, 4, 8, -2]),
        n_win=4,
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
