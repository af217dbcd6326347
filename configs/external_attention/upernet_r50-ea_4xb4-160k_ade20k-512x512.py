# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# UperNet 160k on ADE20K 512x512 with ResNet-50-v1c + external attention plugins (stages 2-4,
# after conv3; SyncBN plugin norm, zero-initialised: the ImageNet ResNet loads unchanged).
# Optimizer and schedule: mmseg's UperNet-R50 recipe (SGD 0.01, poly, 16 images/iter).
_base_ = [
    '../_base_/models/upernet.py',
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
    auxiliary_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=4)
