# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Semantic FPN with Agent-PVT-T on ADE20K 512x512, 40k iterations, 8 GPUs x 2 images.
# Official dense code (downstream/segmentation, configs/agent_pvt/fpn_agent_pvt_t_12-16-28-28.py):
# AdamW lr 2e-4, weight decay 1e-4 on every parameter, poly decay (power 0.9, min lr 0) with
# no warm-up; agent grids 12-16-28-28; drop path 0.1.
_base_ = [
    '../_base_/models/fpn.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
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
    decode_head=dict(num_classes=150),
)
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001),
    clip_grad=None,
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False)]
