# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# EANet (external-attention head) on a dilated ResNet-101 (output stride 8), ADE20K 512x512.
# mmseg's standard d8 recipe (ResNetV1c from open-mmlab://resnet101_v1c, FCN auxiliary head,
# SGD lr 0.01 poly, 16 images/iter); the head follows the official model_torch.py.
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_80k.py',
]
custom_imports = dict(
    imports=['mmattn.models', 'mmattn.seg', 'mmattn.safe_loading'], allow_failed_imports=False
)
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101, norm_cfg=norm_cfg),
    decode_head=dict(
        _delete_=True,
        type='mmattn.EAHead',
        in_channels=2048,
        in_index=3,
        ea_channels=512,
        num_slots=64,
        channels=256,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=dict(num_classes=150, norm_cfg=norm_cfg),
)
train_dataloader = dict(batch_size=4)
