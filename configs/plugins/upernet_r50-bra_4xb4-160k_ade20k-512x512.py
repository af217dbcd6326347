# Citation: mmattn2026 (BibTeX in configs/plugins/README.md)
# UperNet 160k on ADE20K 512 x 512, ResNet-50-v1c with BiFormer's bi-level routing attention
# (Zhu et al., CVPR 2023) as an mmcv plug-in in every bottleneck of stages 3 and 4 (after conv2:
# 256 / 512 channels). Everything else is MMSegmentation's upernet_r50_4xb4-160k_ade20k-512x512
# (SGD 0.01, poly, open-mmlab://resnet50_v1c): the plug-ins start as the identity. map_size:
# the stage-3/4 maps of a 512 x 512 crop (docs/plugins.md).
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
attn = dict(type='BiLevelRoutingAttention')
model = dict(
    backbone=dict(
        plugins=[
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=attn, map_size=32),
                stages=(False, False, True, False),
                position='after_conv2',
            ),
            dict(
                cfg=dict(type='mmattn.AttentionPlugin', attn_cfg=attn, map_size=16),
                stages=(False, False, False, True),
                position='after_conv2',
            ),
        ]
    )
)
