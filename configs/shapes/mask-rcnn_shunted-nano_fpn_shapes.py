# The demo's detector (`make demo`): Mask R-CNN on the bundled shapes set with a narrow,
# one-block-per-stage Shunted Transformer trained from scratch (shunted self-attention in every
# stage, Shunted's conv stem), the same backbone as the demo's Semantic FPN. Neck, heads and
# AdamW are the ResNet-18 baseline's; the schedule is shorter (below).
_base_ = './mask-rcnn_r18_fpn_shapes.py'
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
# 400 iterations (the ResNet-18 baseline runs 600) to keep the whole demo within 15 minutes on
# 2 cores: late iterations cost ~1.2 s here, the mask head then running on many more positives.
max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
