# Semantic FPN template (mmseg 1.x); replace the placeholder backbone and set neck.in_channels.
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
model = dict(pretrained=None)
