# Controlled comparison: fpn_pvt-s-sra_8xb2-40k_ade20k-512x512.py with bi-level routing attention
# (_base_/ops_bra.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./fpn_pvt-s-sra_8xb2-40k_ade20k-512x512.py', './_base_/ops_bra.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
