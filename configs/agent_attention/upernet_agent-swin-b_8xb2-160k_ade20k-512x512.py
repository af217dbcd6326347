# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# UperNet with Agent-Swin-B on ADE20K: the Swin-T recipe (official: letters AAMB2, agent
# grids 9-12-14-7, drop path 0.5).
_base_ = './upernet_agent-swin-t_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_b_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512),
)
