# Controlled comparison on the bundled shapes data (CPU-sized): Semantic FPN with the narrow
# skeleton of _base_/pvt-nano_skeleton.py and spatial-reduction attention (the baseline); the
# fpn_pvt-nano-<op>_shapes configs differ only in the op. The schedule is the shapes Semantic FPN
# one (configs/shapes/fpn_flatten-pvt-nano_shapes.py); tools/analysis_tools/compare_attentions.py
# trains each for the same short schedule.
_base_ = ['../shapes/fpn_flatten-pvt-nano_shapes.py', './_base_/pvt-nano_skeleton.py']
model = dict(backbone={{_base_.comparison_backbone}})
