# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# Semantic FPN 80k with BiFormer-T. No official -T config: the -S recipe with drop path 0.1.
_base_ = './fpn_biformer-s_8xb4-80k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='pretrained/biformer_t_mmattn.pth'),
    )
)
