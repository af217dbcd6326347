# Controlled comparison: fpn_pvt-nano-sra_shapes.py with shunted self-attention
# (_base_/ops_shunted.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./fpn_pvt-nano-sra_shapes.py', './_base_/ops_shunted.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
