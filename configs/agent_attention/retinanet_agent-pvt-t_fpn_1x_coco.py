# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# RetinaNet + FPN with Agent-PVT-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Official dense code (configs/agent_pvt/agent_pvt_t_rtn_1x_12-16-28-28.py): AdamW lr 1e-4,
# weight decay 1e-4 on every parameter, no gradient clipping, 1x step schedule (8, 11) with
# 500-iter warm-up; FPN from C3 with extra convs on the input (mmdet's RetinaNet default);
# agent grids 12-16-28-28; drop path 0.1.
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
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
    neck=dict(in_channels=[64, 128, 320, 512], start_level=1, add_extra_convs='on_input'),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001), clip_grad=None
)
