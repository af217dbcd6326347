# Mask R-CNN on the bundled shapes set with a narrow, one-block-per-stage Agent-PVT trained
# from scratch (agent attention in every stage, as Agent-PVT); the Agent Attention family's
# end-to-end test config. Agent biases are sized for the 128x128 images (pretrain_img_size).
_base_ = './mask-rcnn_r18_fpn_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.AgentPVT',
        arch=dict(
            embed_dims=[32, 64, 128, 256],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            depths=[1, 1, 1, 1],
            sr_ratios=[8, 4, 2, 1],
        ),
        agent_nums=(9, 16, 16, 9),
        pretrain_img_size=128,
        drop_path_rate=0.0,
        init_cfg=None,
    ),
    neck=dict(in_channels=[32, 64, 128, 256]),
)
