# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-PVT-M, COCO 1x: the PVT-T recipe, drop path 0.1 (official).
_base_ = './mask-rcnn_agent-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='medium',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_pvt_m_mmattn.pth'),
    )
)
