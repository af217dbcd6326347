# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# UperNet 160k with BiFormer-T. No official -T config: the -S recipe with drop path 0.2.
_base_ = './upernet_biformer-s_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint='pretrained/biformer_t_mmattn.pth'),
    )
)
