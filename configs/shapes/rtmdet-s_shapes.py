# RTMDet-s on the bundled shapes set: the twin of configs/plugins/rtmdet_s_8xb32-300e_coco.py,
# the data and schedule of rtmdet-tiny_shapes.py with MMDetection's RTMDet-s widths and depths.
_base_ = './rtmdet-tiny_shapes.py'
model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=0.5),
    neck=dict(in_channels=[128, 256, 512], out_channels=128),
    bbox_head=dict(in_channels=128, feat_channels=128),
)
