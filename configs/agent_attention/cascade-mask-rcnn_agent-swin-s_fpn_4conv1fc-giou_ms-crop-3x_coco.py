# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Cascade Mask R-CNN + FPN with Agent-Swin-S, COCO 3x: the Swin-T 3x recipe (official
# agent_swin_s_crcnn_3x_9-12-14-7.py: same hyper-parameters, drop path 0.1, letters AABB).
_base_ = './cascade-mask-rcnn_agent-swin-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_s_mmattn.pth'),
    )
)
