# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Cascade Mask R-CNN + FPN with Agent-Swin-B, COCO 3x: the Swin-T 3x recipe (official
# agent_swin_b_crcnn_3x_9-12-14-7.py: same hyper-parameters, drop path 0.4, letters AAMB2).
_base_ = './cascade-mask-rcnn_agent-swin-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_b_mmattn.pth'),
    ),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
