# Controlled comparison: fpn_pvt-nano-sra_shapes.py with cross-shaped window attention
# (_base_/ops_cswin.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./fpn_pvt-nano-sra_shapes.py', './_base_/ops_cswin.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
