# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVTv2-b1, COCO 1x: the b0 recipe (PVT v2's
# retinanet_pvt_v2_b1_fpn_1x_coco.py has the same settings) with b1's wider stages.
_base_ = './retinanet_flatten-pvtv2-b0_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='b1',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b1_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
)
