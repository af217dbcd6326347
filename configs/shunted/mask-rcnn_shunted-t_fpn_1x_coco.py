# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# Mask R-CNN + FPN with Shunted-T, COCO 1x (same recipe as Shunted-S).
_base_ = './mask-rcnn_shunted-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='tiny', init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_t_mmattn.pth')
    )
)
