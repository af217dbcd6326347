# Shunted self-attention: two head groups aggregating keys at rates r and r/2 (r = the
# skeleton's sr_ratios 8/4/2/1; plain attention where r = 1). Needs an even head count where
# r > 1, which the comparison skeleton's 32-channel heads give.
comparison_attn = dict(_delete_=True, type='mmattn.ShuntedSelfAttention')
