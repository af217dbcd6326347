# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# RetinaNet + FPN with Agent-PVT-L, COCO 1x: the PVT-T recipe, drop path 0.3 (official).
_base_ = './retinanet_agent-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_pvt_l_mmattn.pth'),
    )
)
