# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# UperNet with FLatten-Swin-T on ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# No official dense code; the paper follows Swin, so this is Swin's official UperNet recipe:
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 except on norms, relative position
# tables and (absent here) absolute position embeddings; 1500-iter linear warm-up (ratio 1e-6)
# then poly decay (power 1.0, min lr 0); auxiliary FCN head on stage 3; drop path 0.3.
# Letters LLSS as the ImageNet model: stages 1-2 focused linear attention over the whole map
# (positional encodings resized from 56x56 / 28x28 to the input), stages 3-4 window-7 Swin.
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
        type='mmattn.FLattenSwin',
        arch='tiny',  # default attn_cfgs: the official layout (linear stages 1-2, windows 3-4)
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_swin_t_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
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
