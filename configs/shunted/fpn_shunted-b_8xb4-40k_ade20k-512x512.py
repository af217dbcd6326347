# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# Semantic FPN with Shunted-B on ADE20K (same recipe as Shunted-S).
_base_ = './fpn_shunted-s_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base', init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_b_mmattn.pth')
    )
)
