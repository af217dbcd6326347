# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# Semantic FPN with FLatten-PVTv2-b3 on ADE20K: the b1 recipe (PVT v2's fpn_pvtv2_b3 has the
# same settings).
_base_ = './fpn_flatten-pvtv2-b1_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='b3',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b3_mmattn.pth'),
    )
)
