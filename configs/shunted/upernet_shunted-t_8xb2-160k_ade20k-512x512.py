# Citation: ren2022shunted (BibTeX in configs/shunted/README.md)
# UperNet with Shunted-T on ADE20K (same recipe as Shunted-S).
_base_ = './upernet_shunted-s_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='tiny', init_cfg=dict(type='Pretrained', checkpoint='pretrained/shunted_t_mmattn.pth')
    )
)
