# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Mask R-CNN + FPN with FLatten-PVT-L, COCO 1x: the PVT-T recipe; drop path 0.3 (ImageNet
# config cfgs/flatten_pvt_b.yaml).
_base_ = './mask-rcnn_flatten-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_l_mmattn.pth'),
    )
)
