# Focused linear attention (FLatten-PVT's setting): focusing factor 3, DWC kernel 5, no spatial
# reduction of keys (the official PVT_LA_SR_RATIOS = 1111 overrides the skeleton's 8/4/2/1).
comparison_attn = dict(
    _delete_=True,
    type='mmattn.FocusedLinearAttention',
    focusing_factor=3,
    kernel_size=5,
    sr_ratio=1,
)
