# Semantic FPN on the bundled shapes set with a thin ResNet-50-v1c whose stages 3-4 carry
# external attention plugins (mmattn.ExternalAttentionBlock after conv3), trained from scratch.
# Bottlenecks are needed: mmseg's BasicBlock (ResNet-18/34) takes no plugins. A short warm-up
# so that a few dozen iterations (the end-to-end test) already learn.
_base_ = './fpn_r18_shapes.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        depth=50,
        base_channels=8,
        stem_channels=16,
        plugins=[
            dict(
                cfg=dict(
                    type='mmattn.ExternalAttentionBlock',
                    num_slots=16,
                    reduction=2,
                    norm_cfg=norm_cfg,
                ),
                stages=(False, False, True, True),
                position='after_conv3',
            )
        ],
    )
)
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, begin=5, end={{_base_.max_iters}}, eta_min=1e-5, by_epoch=False),
]
