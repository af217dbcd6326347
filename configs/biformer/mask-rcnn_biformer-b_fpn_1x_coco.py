# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# Mask R-CNN 1x with BiFormer-B: official maskrcnn.1x.biformer_base.py differs from -S only in
# the backbone width and drop path 0.3.
_base_ = './mask-rcnn_biformer-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='pretrained/biformer_b_mmattn.pth'),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
