# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# UperNet (ADE20K 160k) with FLatten-CSWin-S: the FLatten-CSWin-T recipe (upernet_flatten-cswin-
# t_8xb2-160k_ade20k-512x512.py) with
# the small arch (LeapLabTHU/FLatten-Transformer models/flatten_cswin.py,
# cfgs/flatten_cswin_s.yaml), channels 64-512 and drop path 0.4.
_base_ = './upernet_flatten-cswin-t_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_s_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256),
)
