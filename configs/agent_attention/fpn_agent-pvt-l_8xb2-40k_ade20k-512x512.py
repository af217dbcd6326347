# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Semantic FPN with Agent-PVT-L on ADE20K: the PVT-T recipe, drop path 0.1 (official).
_base_ = './fpn_agent-pvt-t_8xb2-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_pvt_l_mmattn.pth'),
    )
)
