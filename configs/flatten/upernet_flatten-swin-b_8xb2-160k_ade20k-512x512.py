# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# UperNet with FLatten-Swin-B on ADE20K: the Swin-T recipe (letters LLSS, drop path 0.3) with
# Swin-B's widths.
_base_ = './upernet_flatten-swin-t_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_swin_b_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512),
)
