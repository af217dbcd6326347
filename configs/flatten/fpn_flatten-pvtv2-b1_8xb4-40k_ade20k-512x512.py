# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Semantic FPN with FLatten-PVTv2-b1 on ADE20K: the b0 recipe (PVT v2's fpn_pvtv2_b1 has the
# same settings) with b1's wider stages.
_base_ = './fpn_flatten-pvtv2-b0_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='b1',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b1_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
)
