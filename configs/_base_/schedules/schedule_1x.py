# 12 epochs, steps at 8 and 11, linear warm-up 500 iters. Transformer backbones train with
# AdamW (lr 1e-4, wd 0.05) as in PVT / Swin / the five papers' detection code.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999),
                   weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
