# Citation: mmattn2026 (BibTeX in configs/plugins/README.md)
# Mask R-CNN 1x on COCO, ResNet-50 with Agent Attention (Han et al., ECCV 2024) as an mmcv
# plug-in in every bottleneck of stages 3 and 4 (after conv2, where mmdet's attention recipes
# put GeneralizedAttention: 256 / 512 channels). Everything else is MMDetection's
# mask-rcnn_r50_fpn_1x_coco.py (SGD 0.02, torchvision ResNet-50): the plug-ins start as the
# identity, so the ImageNet weights compute what they computed. map_size: the stage-3/4 maps of
# an 800 x 1333 image, from which the op's defaults derive (docs/plugins.md).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/tta/coco_instance_tta.py']
custom_imports = dict(
    imports=['mmattn.models', 'mmattn.det', 'mmattn.safe_loading'], allow_failed_imports=False
)
attn = dict(type='AgentAttention')
model = dict(
    backbone=dict(
        plugins=[
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=attn, map_size=(50, 84)),
                stages=(False, False, True, False),
                position='after_conv2',
            ),
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=attn, map_size=(25, 42)),
                stages=(False, False, False, True),
                position='after_conv2',
            ),
        ]
    )
)
