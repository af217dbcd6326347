# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# RetinaNet (COCO 1x) with FLatten-CSWin-B: the FLatten-CSWin-T recipe (retinanet_flatten-cswin-
# t_fpn_1x_coco.py) with
# the base arch (LeapLabTHU/FLatten-Transformer models/flatten_cswin.py,
# cfgs/flatten_cswin_b.yaml), channels 96-768 and drop path 0.6.
_base_ = './retinanet_flatten-cswin-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_b_mmattn.pth'),
    ),
    neck=dict(in_channels=[192, 384, 768]),
)
