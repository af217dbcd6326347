# Controlled comparison: retinanet_pvt-s-sra_fpn_1x_coco.py with cross-shaped window attention
# (_base_/ops_cswin.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./retinanet_pvt-s-sra_fpn_1x_coco.py', './_base_/ops_cswin.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
