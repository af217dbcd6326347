# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# Mask R-CNN + FPN with Shunted-B, COCO 1x (same recipe as Shunted-S).
_base_ = './mask-rcnn_shunted-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='base', init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_b_mmattn.pth')
    )
)
