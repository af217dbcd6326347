# Controlled comparison: fpn_pvt-s-sra_8xb2-40k_ade20k-512x512.py with cross-shaped window
# attention (_base_/ops_cswin.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./fpn_pvt-s-sra_8xb2-40k_ade20k-512x512.py', './_base_/ops_cswin.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
