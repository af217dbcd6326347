# 12 epochs, steps at 8 and 11, linear warm-up 500 iters, with AdamW instead of mmdet's SGD.
# The default here (lr 1e-4, wd 0.05) is Swin's; each family config sets its own official
# values, e.g. PVT's detection recipes use AdamW with wd 1e-4 (lr 2e-4 Mask R-CNN, 1e-4
# RetinaNet; whai362/PVT detection/configs/{mask_rcnn,retinanet}_pvt_*_fpn_1x_coco.py).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
)
auto_scale_lr = dict(enable=False, base_batch_size=16)
