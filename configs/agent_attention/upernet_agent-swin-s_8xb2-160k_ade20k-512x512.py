# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# UperNet with Agent-Swin-S on ADE20K: the Swin-T recipe (official: letters AABB, agent
# grids 9-12-7-7, drop path 0.3).
_base_ = './upernet_agent-swin-t_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='small',
        agent_shapes=[(9, 9), (12, 12), (7, 7), (7, 7)],
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_s_mmattn.pth'),
    )
)
