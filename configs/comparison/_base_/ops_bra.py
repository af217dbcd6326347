# Bi-level routing attention (BiFormer's dense setting): 8 x 8 regions, top-1/4/16 routed
# regions in stages 1-3, global attention with LePE in stage 4 (BiFormer's topk = -2).
comparison_attn = [
    dict(type='mmattn.BiLevelRoutingAttention', n_win=8, topk=1),
    dict(type='mmattn.BiLevelRoutingAttention', n_win=8, topk=4),
    dict(type='mmattn.BiLevelRoutingAttention', n_win=8, topk=16),
    dict(type='mmattn.GlobalAttentionLePE'),
]
