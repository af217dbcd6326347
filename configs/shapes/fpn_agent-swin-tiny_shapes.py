# Semantic FPN on the bundled shapes set with a narrow Agent-Swin trained from scratch: agent
# blocks in stages 1-2 and the first block of stage 3, shifted-window blocks after;
# the Agent Attention family's end-to-end segmentation config. Agent biases are sized for the
# 128x128 images (pretrain_img_size).
_base_ = './fpn_r18_shapes.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.AgentSwin',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        attn_cfgs=[
            dict(type='AgentAttention'),
            dict(type='AgentAttention'),
            [dict(type='AgentAttention'), dict(type='ShiftWindowMSA')],
            dict(type='ShiftWindowMSA'),
        ],
        agent_nums=(9, 16, 16, 4),
        pretrain_img_size=128,
        drop_path_rate=0.0,
        init_cfg=None,
    ),
    neck=dict(in_channels=[32, 64, 128, 256]),
)
# Short warm-up: the test suite trains this config for ~20 iterations only.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, begin=5, end=400, eta_min=1e-5, by_epoch=False),
]
