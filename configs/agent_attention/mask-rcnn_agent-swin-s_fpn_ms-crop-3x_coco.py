# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-Swin-S, COCO 3x: the Swin-T 3x recipe (official: same
# hyper-parameters, letters AABB).
_base_ = './mask-rcnn_agent-swin-t_fpn_ms-crop-3x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_s_mmattn.pth'),
    )
)
