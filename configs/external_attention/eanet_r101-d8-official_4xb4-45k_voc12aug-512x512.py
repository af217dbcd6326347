# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# The official EANet network (MenghaoGuo/EANet model_torch.py + settings.py) on PASCAL VOC aug:
# ResNet-101 with a 128-channel deep stem (3->64->64->128), output stride 8, last-stage
# dilations (2, 8, 16) (official multi-grid), no auxiliary head, logits resized with
# align_corners=True. This is the config for checkpoints from
# tools/model_converters/eanet2mmattn.py.
#
# Training follows the official train_torch.py / settings.py and the data code it imports
# (EMANet's dataset.py, which the EANet README credits): SGD lr 9e-3, momentum 0.9, weight decay
# 1e-4 on conv weights only, biases (conv and BN) at 2x lr without decay, BN weights without
# decay, poly 0.9 to 0, 45k iterations of 16 images; augmentation: a random factor from
# (0.5, 0.6, ..., 2.0) of the *original* image size, random crop, horizontal flip, padding with
# the mean colour / ignore label, nothing else (no photometric distortion, no cat_max_ratio).
# What differs from the official run:
# - Backbone initialisation: random here. The official network starts from an ImageNet
#   deep-stem ResNet-101 ('resnet101-2a57e44d.pth', the PyTorch-Encoding layout distributed with
#   EMANet), which mmattn has no converter for; mmseg's 'open-mmlab://resnet101_v1c' has a
#   64-channel stem and does not fit this 128-channel one. Set
#   model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...) to a converted copy of it
#   (stem keys conv1.{0,1,3,4,6} -> stem.{0,1,3,4,6}, bn1 -> stem.7) to train as the authors did.
# - Crop 512 (official 513), and the official poly update every 10 iterations is per iteration.
# - Evaluation: tools/test.py runs one whole-image pass at the original size (the official
#   eval_torch.py, used during training, does the same after zero-padding to 8k+1). The
#   official test-server result (test_torch.py) sums the logits of scales (0.5, 0.75, ..., 1.75)
#   of the original image, each with and without horizontal flip; the `tta_pipeline` inherited
#   from mmseg's VOC base is that set of inputs, run by `tools/test.py CONFIG CKPT --tta`
#   (SegTTAModel, which averages softmax scores instead of summing logits).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_40k.py',
]
custom_imports = dict(
    imports=['mmattn.models', 'mmattn.seg', 'mmattn.safe_loading'], allow_failed_imports=False
)
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        depth=101,
        stem_channels=128,
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        multi_grid=(2, 8, 16),
        contract_dilation=True,
        norm_cfg=norm_cfg,
        # only the last stage feeds a head (no auxiliary head): returning the other three
        # would keep 40 MiB of stage maps alive through the head at 512x512 (inference peak
        # 148 MiB instead of the official network's 112 MiB)
        out_indices=(3,),
    ),
    decode_head=dict(
        _delete_=True,
        type='mmattn.EAHead',
        in_channels=2048,
        in_index=0,
        ea_channels=512,
        num_slots=64,
        channels=256,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=None,
)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=9e-3, momentum=0.9, weight_decay=1e-4),
    # every bias (conv and BN) at 2x lr without decay, BN weights without decay
    paramwise_cfg=dict(
        norm_decay_mult=0.0, custom_keys={'.bias': dict(lr_mult=2.0, decay_mult=0.0)}
    ),
    clip_grad=None,
)
train_cfg = dict(max_iters=45000, val_interval=5000)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=45000, by_epoch=False)]

# Official data: scale = random choice of (0.5, 0.6, ..., 2.0) x the original size, crop, flip.
# Padding to the crop happens in the data preprocessor after normalisation (0 = mean colour,
# labels 255), as in the official code.
scales = [round(0.5 + 0.1 * i, 1) for i in range(16)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoice',
        transforms=[[dict(type='Resize', scale_factor=s, keep_ratio=True)] for s in scales],
    ),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# (the ConcatDataset list of the mmseg base is replaced whole, so both parts are restated)
data_root = 'data/VOCdevkit/VOC2012'
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        datasets=[
            dict(
                type='PascalVOCDataset',
                data_root=data_root,
                data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                ann_file='ImageSets/Segmentation/train.txt',
                pipeline=train_pipeline,
            ),
            dict(
                type='PascalVOCDataset',
                data_root=data_root,
                data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
                ann_file='ImageSets/Segmentation/aug.txt',
                pipeline=train_pipeline,
            ),
        ]
    ),
)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
