# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# RetinaNet + FPN with FLatten-CSWin-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Backbone: LeapLabTHU/FLatten-Transformer models/flatten_cswin.py, cfgs/flatten_cswin_t.yaml
# (letters LLSS: global focused linear attention with LePE (positional encodings resized from 56x56
# / 28x28) in stages 1-2, CSWin stripes 7 in stage 3, global in stage 4).
# No official CSWin RetinaNet config: CSWin's detection optimizer (the paper follows Swin: AdamW
# lr 1e-4, betas (0.9, 0.999), weight decay 0.05 except on norms) with mmdet's RetinaNet 1x
# (single-scale 1333x800, steps (8, 11), 500-iter warm-up; FPN from C3 with extra convs on
# the input); drop path as CSWin's dense configs (T 0.3, S 0.4, B 0.6). Stages 2-4 only
# (out_indices, as mmdet's RetinaNet-Swin): stage 1's output norm would get no gradient.
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.FLattenCSWin',
        arch='tiny',  # default attn_cfgs: the official layout
        drop_path_rate=0.3,
        out_indices=(1, 2, 3),
        out_norms=True,  # CSWin's dense protocol: a LayerNorm on each output
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_cswin_t_mmattn.pth'),
    ),
    neck=dict(in_channels=[128, 256, 512], start_level=0, add_extra_convs='on_input'),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=None,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }
    ),
)
