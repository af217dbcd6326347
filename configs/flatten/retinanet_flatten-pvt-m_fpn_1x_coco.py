# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVT-M, COCO 1x: the PVT-T recipe; drop path 0.3 (ImageNet
# config cfgs/flatten_pvt_m.yaml).
_base_ = './retinanet_flatten-pvt-t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='medium',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_m_mmattn.pth'),
    )
)
