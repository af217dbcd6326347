# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-PVT-S, COCO 1x: the PVT-T recipe, drop path 0.2 (official).
_base_ = './mask-rcnn_agent-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_pvt_s_mmattn.pth'),
    )
)
