# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Semantic FPN (ADE20K 40k) with FLatten-CSWin-B: the FLatten-CSWin-T recipe (fpn_flatten-cswin-
# t_8xb2-40k_ade20k-512x512.py) with
# the base arch (LeapLabTHU/FLatten-Transformer models/flatten_cswin.py,
# cfgs/flatten_cswin_b.yaml), channels 96-768 and drop path 0.6.
_base_ = './fpn_flatten-cswin-t_8xb2-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_b_mmattn.pth'),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
