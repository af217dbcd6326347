# Cross-shaped window attention with LePE (CSWin's setting): stripes 1/2/7 wide in stages 1-3
# (half the heads in horizontal, half in vertical stripes), global attention in stage 4.
comparison_attn = [dict(type='mmattn.CSWinAttention', split_size=s) for s in (1, 2, 7, None)]
