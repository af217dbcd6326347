# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# EANet R-50 d8, ADE20K, 80k iterations.
_base_ = './eanet_r101-d8_4xb4-80k_ade20k-512x512.py'
model = dict(pretrained='open-mmlab://resnet50_v1c', backbone=dict(depth=50))
