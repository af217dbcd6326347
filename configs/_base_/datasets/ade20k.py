# ADE20K 512x512; expects data/ade/ADEChallengeData2016/{images,annotations}/{training,validation}.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

# Test-time augmentation (`tools/test.py CONFIG CKPT --tta`): the multi-scale + flip protocol of
# the papers' "MS" mIoU columns (Agent, BiFormer, Shunted, FLatten): ratios 0.5-1.75 of the
# image, each flipped and not (12 views), class scores averaged by SegTTAModel (tta_model of
# mmseg's default_runtime, which default_runtime_seg.py inherits). Stated here
# (same as mmseg's base) so that every ADE20K recipe visibly carries it.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ],
    ),
]
