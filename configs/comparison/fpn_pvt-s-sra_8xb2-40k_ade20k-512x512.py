# Controlled comparison, Semantic FPN on ADE20K 512x512, 40k iterations: the PVT-S-sized
# skeleton of _base_/pvt-s_skeleton.py with softmax spatial-reduction attention (the baseline).
# The other fpn_pvt-s-<op> configs differ only in the op. The recipe is Agent-PVT's Semantic FPN
# (AdamW 2e-4, 16 images), from scratch: no ImageNet weights exist for this skeleton.
_base_ = [
    '../agent_attention/fpn_agent-pvt-t_8xb2-40k_ade20k-512x512.py',
    './_base_/pvt-s_skeleton.py',
]
model = dict(backbone={{_base_.comparison_backbone}})
