# Multi-head external attention (EAMLP): 64 memory slots, head expansion 4, linear in tokens.
comparison_attn = dict(
    _delete_=True, type='mmattn.MultiHeadExternalAttention', num_slots=64, expand_ratio=4
)
