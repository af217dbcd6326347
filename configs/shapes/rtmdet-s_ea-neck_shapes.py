# The twin of configs/plugins/rtmdet_s_ea-neck_8xb32-300e_coco.py on the bundled
# shapes set: rtmdet-s_shapes.py plus an mmattn.AttentionPlugin
# (MultiHeadExternalAttention) on each backbone map before the neck.
# map_sizes: C3-C5 of a 128 px image.
_base_ = './rtmdet-s_shapes.py'
model = dict(
    neck=dict(
        _delete_=True,
        type='mmattn.AttentionNeck',
        neck={{_base_.model.neck}},
        plugin=dict(attn_cfg=dict(type='MultiHeadExternalAttention')),
        levels=(0, 1, 2),
        where='in',
        map_sizes=(16, 8, 4),
    )
)
