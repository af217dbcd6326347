# The comparison skeleton (the baseline op: PVT's softmax spatial-reduction attention): PVT-S sizes (channels 64/128/320/512, depths 3/4/6/3, MLP ratios
# 8/8/4/4, spatial-reduction rates 8/4/2/1) with 32-channel heads in every stage (2/4/10/16
# heads; PVT-S has 1/2/5/8 heads of 64, which Shunted's two head groups can't split). Every op
# gets the same stage facts; no ImageNet weights exist for it, so it trains from scratch.
comparison_backbone = dict(
    _delete_=True,
    type='mmattn.PyramidVisionTransformerSkeleton',
    arch=dict(
        embed_dims=[64, 128, 320, 512],
        num_heads=[2, 4, 10, 16],
        mlp_ratios=[8, 8, 4, 4],
        depths=[3, 4, 6, 3],
        sr_ratios=[8, 4, 2, 1],
    ),
    drop_path_rate=0.1,
    out_indices=(0, 1, 2, 3),
    attn_cfgs=dict(type='mmattn.SpatialReductionAttention'),  # swapped by ops_*.py
    init_cfg=None,
)
