# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# Mask R-CNN 1x with BiFormer-T. There is no official -T detection config: same recipe as -S,
# with drop path 0.1 (our choice for the shallower model).
_base_ = './mask-rcnn_biformer-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='pretrained/biformer_t_mmattn.pth'),
    )
)
