# The CPU-sized comparison skeleton for the bundled shapes data, with the baseline op (PVT's
# spatial-reduction attention): one block per stage, channels 32/64/128/256, 16-channel heads,
# spatial-reduction rates 8/4/2/1, pretraining size 128 (the shapes images).
comparison_backbone = dict(
    _delete_=True,
    type='mmattn.PyramidVisionTransformerSkeleton',
    arch=dict(
        embed_dims=[32, 64, 128, 256],
        num_heads=[2, 4, 8, 16],
        mlp_ratios=[4, 4, 4, 4],
        depths=[1, 1, 1, 1],
        sr_ratios=[8, 4, 2, 1],
    ),
    pretrain_img_size=128,
    drop_path_rate=0.0,
    out_indices=(0, 1, 2, 3),
    attn_cfgs=dict(type='mmattn.SpatialReductionAttention'),  # swapped by ops_*.py
    init_cfg=None,
)
