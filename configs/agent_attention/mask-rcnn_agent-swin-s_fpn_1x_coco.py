# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-Swin-S, COCO 1x: the Swin-T recipe (official: same
# hyper-parameters, drop path 0.1, letters AABB).
_base_ = './mask-rcnn_agent-swin-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_s_mmattn.pth'),
    )
)
