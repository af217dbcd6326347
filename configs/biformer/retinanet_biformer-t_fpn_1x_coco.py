# Citation: zhu2023biformer (BibTeX in configs/biformer/README.md)
# RetinaNet 1x with BiFormer-T. No official -T config: the -S recipe with drop path 0.1.
_base_ = './retinanet_biformer-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='pretrained/biformer_t_mmattn.pth'),
    )
)
