# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# RetinaNet 1x on COCO with ResNet-50 + external attention plugins (see the Mask R-CNN sibling
# for the plugin placement and init). Optimizer: mmdet's RetinaNet recipe (SGD 0.01).
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
ea_plugin = dict(
    cfg=dict(
        type='mmattn.ExternalAttentionBlock',
        num_slots=64,
        reduction=4,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
    ),
    stages=(False, True, True, True),
    position='after_conv3',
)
model = dict(
    backbone=dict(
        plugins=[ea_plugin],
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint='torchvision://resnet50'),
    )
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
)
