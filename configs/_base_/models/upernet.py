# UperNet template (mmseg 1.x); replace the placeholder backbone and set
# decode_head.in_channels / auxiliary_head.in_channels to the backbone's channels.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'], allow_failed_imports=False)
model = dict(pretrained=None)
