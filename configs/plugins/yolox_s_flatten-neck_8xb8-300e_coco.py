# Citation: mmattn2026 (BibTeX in configs/plugins/README.md)
# YOLOX-s with focused linear attention (FLatten, Han et al., ICCV 2023) in the neck, the
# placement of the write-ups that put FLatten into YOLO necks: an mmattn.AttentionPlugin on each
# backbone map (C3-C5, [128, 256, 512] channels) before YOLOXPAFPN. Everything else is
# MMDetection's yolox_s_8xb8-300e_coco.py (its multi-scale training, 480-800 px, feeds the
# plug-ins maps of every size). map_sizes: C3-C5 at 640 x 640 (docs/plugins.md).
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
model = dict(
    neck=dict(
        _delete_=True,
        type='mmattn.AttentionNeck',
        neck={{_base_.model.neck}},
        plugin=dict(attn_cfg=dict(type='FocusedLinearAttention')),
        levels=(0, 1, 2),
        where='in',
        map_sizes=(80, 40, 20),
    )
)
