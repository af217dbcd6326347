# The official EANet network (MenghaoGuo/EANet model_torch.py + settings.py) on PASCAL VOC aug:
# ResNet-101 with a 128-channel deep stem (3->64->64->128), output stride 8, last-stage
# dilations (2, 8, 16) (official multi-grid), no auxiliary head, logits resized with
# align_corners=True. This is the config for checkpoints from
# tools/model_converters/eanet2mmattn.py. Training hyper-parameters are the official ones (SGD
# lr 9e-3, momentum 0.9, weight decay 1e-4 on conv weights only, biases at 2x lr, poly 0.9,
# 45k iterations, 16 images/iter); the crop is mmseg's 512 (officially 513).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py', 'mmseg::_base_/datasets/pascal_voc12_aug.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_40k.py'
]
custom_imports = dict(imports=['mmattn.models', 'mmattn.seg'], allow_failed_imports=False)
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        depth=101, stem_channels=128, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
        multi_grid=(2, 8, 16), contract_dilation=True, norm_cfg=norm_cfg),
    decode_head=dict(
        _delete_=True,
        type='mmattn.EAHead',
        in_channels=2048,
        in_index=3,
        ea_channels=512,
        num_slots=64,
        channels=256,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=9e-3, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0., bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=None)
train_cfg = dict(max_iters=45000, val_interval=5000)
param_scheduler = [
    dict(type='PolyLR', eta_min=0., power=0.9, begin=0, end=45000, by_epoch=False)
]
