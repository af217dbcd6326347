# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Semantic FPN with FLatten-PVT-S on ADE20K: the PVT-T recipe; drop path 0.1 (ImageNet
# config cfgs/flatten_pvt_s.yaml).
_base_ = './fpn_flatten-pvt-t_8xb2-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvt_s_mmattn.pth'),
    )
)
