# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# EANet R-101 d8, ADE20K, 160k iterations (mmseg's 160k schedule: poly, SGD lr 0.01).
_base_ = './eanet_r101-d8_4xb4-80k_ade20k-512x512.py'
train_cfg = dict(max_iters=160000, val_interval=16000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=160000, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=16000))
