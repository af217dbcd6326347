# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# UperNet 160k, ADE20K, ResNet-101-v1c + external attention plugins.
_base_ = './upernet_r50-ea_4xb4-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        depth=101, init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet101_v1c')
    )
)
