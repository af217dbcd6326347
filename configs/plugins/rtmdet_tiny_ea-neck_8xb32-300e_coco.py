# Citation: mmattn2026 (BibTeX in configs/plugins/README.md)
# RTMDet-tiny with multi-head external attention (Guo et al., TPAMI 2022) in the neck: an
# mmattn.AttentionPlugin on each of the three backbone maps (C3-C5, [96, 192, 384] channels)
# before CSPNeXtPAFPN. Everything else is MMDetection's rtmdet_tiny_8xb32-300e_coco.py.
# The plug-ins start as the identity, so the ImageNet CSPNeXt loads unchanged. map_sizes:
# the C3-C5 maps of a 640 x 640 training crop, from which the op's defaults derive
# (docs/plugins.md).
_base_ = './rtmdet_tiny_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
model = dict(
    neck=dict(
        _delete_=True,
        type='mmattn.AttentionNeck',
        neck={{_base_.model.neck}},
        plugin=dict(attn_cfg=dict(type='MultiHeadExternalAttention')),
        levels=(0, 1, 2),
        where='in',
        map_sizes=(80, 40, 20),
    )
)
