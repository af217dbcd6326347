# Controlled comparison: fpn_pvt-nano-sra_shapes.py with bi-level routing attention
# (_base_/ops_bra.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./fpn_pvt-nano-sra_shapes.py', './_base_/ops_bra.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
