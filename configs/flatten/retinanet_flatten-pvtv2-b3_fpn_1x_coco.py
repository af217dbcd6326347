# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVTv2-b3, COCO 1x: the b1 recipe (PVT v2's
# retinanet_pvt_v2_b3_fpn_1x_coco.py has the same settings).
_base_ = './retinanet_flatten-pvtv2-b1_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='b3',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b3_mmattn.pth'),
    )
)
