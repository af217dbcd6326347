# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Mask R-CNN + FPN with FLatten-PVTv2-b2, COCO 1x: the b1 recipe (PVT v2's
# mask_rcnn_pvt_v2_b2_fpn_1x_coco.py has the same settings).
_base_ = './mask-rcnn_flatten-pvtv2-b1_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='b2',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b2_mmattn.pth'),
    )
)
