# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# RetinaNet + FPN with Agent-PVT-S, COCO 1x: the PVT-T recipe, drop path 0.1 (official).
_base_ = './retinanet_agent-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_pvt_s_mmattn.pth'),
    )
)
