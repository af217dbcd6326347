# Controlled comparison, RetinaNet + FPN on COCO 1x: the PVT-S-sized skeleton of
# _base_/pvt-s_skeleton.py with softmax spatial-reduction attention (the baseline). The other
# retinanet_pvt-s-<op> configs differ only in the op. The recipe (optimiser, schedule, data) is
# Agent-PVT's RetinaNet 1x, from scratch: no ImageNet weights exist for this skeleton.
_base_ = ['../agent_attention/retinanet_agent-pvt-t_fpn_1x_coco.py', './_base_/pvt-s_skeleton.py']
model = dict(backbone={{_base_.comparison_backbone}})
