# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-PVT-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Official dense code (LeapLabTHU/Agent-Attention downstream/detection,
# configs/agent_pvt/agent_pvt_t_mrcnn_1x_12-16-28-28.py): AdamW lr 2e-4, weight decay 1e-4
# on every parameter (no paramwise rules), no gradient clipping, mmdet's 1x step schedule
# (8, 11) with 500-iter linear warm-up, single-scale 1333x800 training; agent grids
# 12-16-28-28 (downstream_agent_shapes); drop path 0.1.
# Backbone weights: convert the official ImageNet checkpoint first (see README.md).
_base_ = [
    '../_base_/models/mask-rcnn_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.AgentPVT',
        arch='tiny',
        agent_shapes=[(12, 12), (16, 16), (28, 28), (28, 28)],
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_pvt_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, weight_decay=0.0001), clip_grad=None
)
