# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# UperNet 160k with BiFormer-B: official upernet.biformer_base.py differs from -S only in the
# backbone width and drop path 0.4.
_base_ = './upernet_biformer-s_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.4,
        init_cfg=dict(checkpoint='pretrained/biformer_b_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384),
)
