# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Semantic FPN (ADE20K 40k) with FLatten-CSWin-S: the FLatten-CSWin-T recipe (fpn_flatten-cswin-
# t_8xb2-40k_ade20k-512x512.py) with
# the small arch (LeapLabTHU/FLatten-Transformer models/flatten_cswin.py,
# cfgs/flatten_cswin_s.yaml), channels 64-512 and drop path 0.4.
_base_ = './fpn_flatten-cswin-t_8xb2-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_s_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
)
