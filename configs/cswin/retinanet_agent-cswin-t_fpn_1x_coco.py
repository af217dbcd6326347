# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# RetinaNet + FPN with Agent-CSWin-T, COCO 1x (12 epochs, 8 GPUs x 2 images).
# Backbone: LeapLabTHU/Agent-Attention agent_transformer/models/agent_cswin.py,
# cfgs/agent_cswin_t.yaml (letters AABB: global agent attention (agents 9/16, the official
# pretrained grids) in stages 1-2, CSWin stripes 7 in stage 3, global in stage 4).
# No official CSWin RetinaNet config: CSWin's detection optimizer (the paper follows Swin: AdamW
# lr 1e-4, betas (0.9, 0.999), weight decay 0.05 except on norms) with mmdet's RetinaNet 1x
# (single-scale 1333x800, steps (8, 11), 500-iter warm-up; FPN from C3 with extra convs on
# the input); drop path as CSWin's dense configs (T 0.3, S 0.4, B 0.6). Stages 2-4 only
# (out_indices, as mmdet's RetinaNet-Swin): stage 1's output norm would get no gradient.
# Agent biases without weight decay, as Agent-Attention's dense configs for Agent-Swin.
_base_ = [
    '../_base_/models/retinanet_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmattn.AgentCSWin',
        arch='tiny',  # default attn_cfgs: the official layout
        drop_path_rate=0.3,
        out_indices=(1, 2, 3),
        out_norms=True,  # CSWin's dense protocol: a LayerNorm on each output
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_cswin_t_mmattn.pth'),
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
            'an_bias': dict(decay_mult=0.0),
            'na_bias': dict(decay_mult=0.0),
            'ah_bias': dict(decay_mult=0.0),
            'aw_bias': dict(decay_mult=0.0),
            'ha_bias': dict(decay_mult=0.0),
            'wa_bias': dict(decay_mult=0.0),
        }
    ),
)
