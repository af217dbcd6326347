# Semantic FPN on the bundled shapes set with a thin ResNet-50-v1c whose stages 2-4 carry
# external attention plugins (mmattn.ExternalAttentionBlock after conv3), trained from scratch.
# Bottlenecks are needed: mmseg's BasicBlock (ResNet-18/34) takes no plugins.
_base_ = './fpn_r18_shapes.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        depth=50, base_channels=8, stem_channels=16,
        plugins=[dict(cfg=dict(type='mmattn.ExternalAttentionBlock', num_slots=16,
                               norm_cfg=norm_cfg),
                      stages=(False, True, True, True), position='after_conv3')]))
