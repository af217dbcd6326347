# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# UperNet with FLatten-CSWin-T on ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# Backbone: LeapLabTHU/FLatten-Transformer models/flatten_cswin.py, cfgs/flatten_cswin_t.yaml
# (letters LLSS: global focused linear attention with LePE (positional encodings resized from 56x56
# / 28x28) in stages 1-2, CSWin stripes 7 in stage 3, global in stage 4).
# Recipe: CSWin's official dense config, microsoft/CSWin-Transformer
# segmentation/configs/cswin/upernet_cswin_tiny.py (+ _base/upernet_cswin.py):
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 except on norms (and the absent
# position tables); 1500-iter linear warm-up (ratio 1e-6) then poly decay (power 1.0, min
# lr 0); auxiliary FCN head on stage 3; drop path 0.3 (S 0.4, B 0.6); output norms.
_base_ = [
    '../_base_/models/upernet.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_160k.py',
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
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150),
)
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
