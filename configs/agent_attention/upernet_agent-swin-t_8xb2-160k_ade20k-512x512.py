# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# UperNet with Agent-Swin-T on ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# Official dense code (downstream/segmentation, configs/agent_swin/upernet_agent_swin_t_9-12-14-7.py):
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 except on norms, relative position
# tables and agent biases; 1500-iter linear warm-up (ratio 1e-6) then poly decay (power 1.0,
# min lr 0); auxiliary FCN head on stage 3; agent grids 9-12-14-7; drop path 0.3.
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
        type='mmattn.AgentSwin',
        arch='tiny',
        agent_shapes=[(9, 9), (12, 12), (14, 14), (7, 7)],
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_swin_t_mmattn.pth'),
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
            'an_bias': dict(decay_mult=0.0),
            'na_bias': dict(decay_mult=0.0),
            'ah_bias': dict(decay_mult=0.0),
            'aw_bias': dict(decay_mult=0.0),
            'ha_bias': dict(decay_mult=0.0),
            'wa_bias': dict(decay_mult=0.0),
        }
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
