# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Semantic FPN with FLatten-CSWin-T on ADE20K 512x512, 40k iterations, 8 GPUs x 2 images.
# Backbone: LeapLabTHU/FLatten-Transformer models/flatten_cswin.py, cfgs/flatten_cswin_t.yaml
# (letters LLSS: global focused linear attention with LePE (positional encodings resized from 56x56
# / 28x28) in stages 1-2, CSWin stripes 7 in stage 3, global in stage 4).
# CSWin has no Semantic FPN config; this is the PVT Semantic FPN protocol that Agent-Attention's
# dense code uses (downstream/segmentation, configs/agent_pvt/fpn_agent_pvt_t_12-16-28-28.py):
# AdamW lr 2e-4, weight decay 1e-4 on every parameter, poly decay (power 0.9, min lr 0), no
# warm-up; drop path and output norms as CSWin's dense configs (T 0.3, S 0.4, B 0.6).
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
        type='mmattn.FLattenCSWin',
        arch='tiny',  # default attn_cfgs: the official layout
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        out_norms=True,  # CSWin's dense protocol: a LayerNorm on each output
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
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
