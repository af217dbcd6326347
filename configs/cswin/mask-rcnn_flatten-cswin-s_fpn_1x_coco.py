# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Mask R-CNN (COCO 1x) with FLatten-CSWin-S: the FLatten-CSWin-T recipe (mask-rcnn_flatten-cswin-
# t_fpn_1x_coco.py) with
# the small arch (LeapLabTHU/FLatten-Transformer models/flatten_cswin.py,
# cfgs/flatten_cswin_s.yaml), channels 64-512 and drop path 0.4.
_base_ = './mask-rcnn_flatten-cswin-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
)
