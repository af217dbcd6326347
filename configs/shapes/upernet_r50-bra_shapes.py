# The twin of configs/plugins/upernet_r50-bra_4xb4-160k_ade20k-512x512.py on the bundled shapes
# set: UperNet with a thin ResNet-50-v1c (base width 8, as fpn_r50-ea_shapes.py) whose stage-3/4
# bottlenecks carry bi-level routing attention plug-ins after conv2 (32 / 64 channels), from
# scratch, on the data and schedule of fpn_r18_shapes.py. map_size: stage 3/4 of 128 px.
_base_ = [
    '../_base_/models/upernet.py',
    '../_base_/datasets/shapes_ade.py',
    '../_base_/default_runtime_seg.py',
]
norm_cfg = dict(type='BN', requires_grad=True)
attn = dict(type='BiLevelRoutingAttention')
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(
        depth=50,
        base_channels=8,
        stem_channels=16,
        norm_cfg=norm_cfg,
        plugins=[
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=attn, map_size=8),
                stages=(False, False, True, False),
                position='after_conv2',
            ),
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=attn, map_size=4),
                stages=(False, False, False, True),
                position='after_conv2',
            ),
        ],
    ),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64, num_classes=4, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=4, norm_cfg=norm_cfg),
)

max_iters = 400
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01), clip_grad=None
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', power=1.0, begin=30, end=max_iters, eta_min=1e-5, by_epoch=False),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=2),
)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
