# Semantic FPN on the bundled shapes set with a narrow, one-block-per-stage Shunted
# Transformer (same stem, rates 8/4/2/1 and detail-specific FFN as Shunted-T), from scratch.
_base_ = './fpn_r18_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.ShuntedTransformer',
        arch=dict(
            embed_dims=[32, 64, 128, 256],
            num_heads=[2, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            sr_ratios=[8, 4, 2, 1],
            depths=[1, 1, 1, 1],
            num_convs=0,
        ),
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
# `indices=N` (e.g. --cfg-options test_dataloader.dataset.indices=24) tests on the first N
# images only; None uses them all.
test_dataloader = dict(dataset=dict(indices=None))
