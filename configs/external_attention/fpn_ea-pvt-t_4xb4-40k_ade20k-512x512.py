# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# Semantic FPN, ADE20K, EA-PVT-T: the EA-PVT-S recipe (from scratch; no official weights).
_base_ = './fpn_ea-pvt-s_4xb4-40k_ade20k-512x512.py'
model = dict(backbone=dict(arch='tiny'))
