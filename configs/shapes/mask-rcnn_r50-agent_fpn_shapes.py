# The twin of configs/plugins/mask-rcnn_r50-agent_fpn_1x_coco.py on the bundled shapes set:
# mask-rcnn_r18_fpn_shapes.py with a thin ResNet-50 (base width 16) whose stage-3/4 bottlenecks
# carry Agent Attention plug-ins after conv2 (64 / 128 channels), trained from scratch.
# map_size: the stage-3/4 maps of a 128 px image.
_base_ = './mask-rcnn_r18_fpn_shapes.py'
attn = dict(type='AgentAttention')
model = dict(
    backbone=dict(
        depth=50,
        base_channels=16,
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
    neck=dict(in_channels=[64, 128, 256, 512]),
)
