# RetinaNet + FPN template (mmdet 3.x); replace the placeholder backbone as for Mask R-CNN.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
model = dict(backbone=dict(init_cfg=None))
