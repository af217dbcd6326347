# The demo's detector (`make demo`): Mask R-CNN with the narrow Agent-PVT, trained from scratch
# for 2000 iterations (about 9 minutes on 2 CPU cores), evaluated with COCO bbox/segm mAP.
_base_ = './mask-rcnn_agent-pvt-tiny_fpn_shapes.py'
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=50), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
