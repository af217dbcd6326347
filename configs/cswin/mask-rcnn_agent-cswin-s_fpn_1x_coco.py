# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Mask R-CNN (COCO 1x) with Agent-CSWin-S: the Agent-CSWin-T recipe (mask-rcnn_agent-cswin-
# t_fpn_1x_coco.py) with
# the small arch (LeapLabTHU/Agent-Attention agent_transformer/models/agent_cswin.py,
# cfgs/agent_cswin_s.yaml), channels 64-512 and drop path 0.4.
_base_ = './mask-rcnn_agent-cswin-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_cswin_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
)
