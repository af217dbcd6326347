# Controlled comparison: fpn_pvt-nano-sra_shapes.py with agent attention
# (_base_/ops_agent.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./fpn_pvt-nano-sra_shapes.py', './_base_/ops_agent.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
