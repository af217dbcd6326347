# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# Semantic FPN 160k on ADE20K 512x512 with ResNet-50-v1c + external attention plugins.
# Optimizer and schedule: mmseg's ADE20K Semantic FPN recipe
# (configs/sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py: SGD lr 0.01, momentum 0.9, wd 5e-4,
# poly 0.9 to 1e-4, 160k iterations, 4 GPUs x 4 images).
_base_ = [
    '../_base_/models/fpn.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=50,
        plugins=[
            dict(
                cfg=dict(
                    type='mmattn.ExternalAttentionBlock',
                    num_slots=64,
                    reduction=4,
                    norm_cfg=norm_cfg,
                ),
                stages=(False, True, True, True),
                position='after_conv3',
            )
        ],
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c'),
    ),
    decode_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=4)
