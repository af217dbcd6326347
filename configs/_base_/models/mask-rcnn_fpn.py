# Mask R-CNN + FPN template (mmdet 3.x). The ResNet-50 here is a placeholder: a config sets
# `backbone=dict(_delete_=True, type='mmattn.<Backbone>', ...)` and `neck.in_channels` to the
# channels of the backbone's 4 NCHW output levels.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(
    imports=['mmattn.models', 'mmattn.det', 'mmattn.safe_loading'], allow_failed_imports=False
)
model = dict(backbone=dict(init_cfg=None))
