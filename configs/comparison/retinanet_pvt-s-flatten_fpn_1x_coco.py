# Controlled comparison: retinanet_pvt-s-sra_fpn_1x_coco.py with focused linear attention
# (_base_/ops_flatten.py) instead of spatial-reduction attention; nothing else differs.
_base_ = ['./retinanet_pvt-s-sra_fpn_1x_coco.py', './_base_/ops_flatten.py']
model = dict(backbone=dict(attn_cfgs={{_base_.comparison_attn}}))
