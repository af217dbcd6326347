# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# UperNet with FLatten-Swin-S on ADE20K: the Swin-T recipe (letters LLSS, drop path 0.3).
_base_ = './upernet_flatten-swin-t_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_swin_s_mmattn.pth'),
    )
)
