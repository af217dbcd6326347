# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# Semantic FPN 80k with BiFormer-B: official sfpn.biformer_base.py differs from -S only in the
# backbone width and drop path 0.3.
_base_ = './fpn_biformer-s_8xb4-80k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='pretrained/biformer_b_mmattn.pth'),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
