# The demo's segmenter (`make demo`): Semantic FPN with the narrow Shunted Transformer, trained
# from scratch for 2000 iterations (about 4 minutes on 2 CPU cores), evaluated with mIoU.
_base_ = './fpn_shunted-nano_shapes.py'
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', power=1.0, begin=100, end=max_iters, eta_min=1e-5, by_epoch=False),
]
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(interval=max_iters, max_keep_ckpts=1)
)
