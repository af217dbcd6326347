# Citation: guo2022beyond (BibTeX in configs/external_attention/README.md)
# Mask R-CNN 1x on COCO with a ResNet-50 whose stages 2-4 end every bottleneck with an external
# attention block (plugin after conv3, as mmdet's GCNet / non-local recipes), ImageNet init.
# The plugin starts as the identity (zero-initialised output norm), so torchvision ResNet-50
# weights load unchanged. GroupNorm inside the plugin: the backbone's BN is frozen
# (norm_eval=True), which would freeze a BN plugin's statistics at mean 0 / var 1.
# Optimizer: mmdet's ResNet recipe (SGD 0.02, 16 images/iter), not the AdamW of _base_.
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/coco_instance.py',
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
    optimizer=dict(_delete_=True, type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
)
