# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Semantic FPN with FLatten-PVT-M on ADE20K: the PVT-T recipe; drop path 0.3 (ImageNet
# config cfgs/flatten_pvt_m.yaml).
_base_ = './fpn_flatten-pvt-t_8xb2-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='medium',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_m_mmattn.pth'),
    )
)
