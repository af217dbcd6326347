# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# Semantic FPN with Shunted-T on ADE20K (same recipe as Shunted-S).
_base_ = './fpn_shunted-s_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='tiny', init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_t_mmattn.pth')
    )
)
