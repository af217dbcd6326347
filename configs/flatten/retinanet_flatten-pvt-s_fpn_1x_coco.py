# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVT-S, COCO 1x: the PVT-T recipe; drop path 0.1 (ImageNet
# config cfgs/flatten_pvt_s.yaml).
_base_ = './retinanet_flatten-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_s_mmattn.pth'),
    )
)
