# Citation: han2024agent (BibTeX in configs/agent_attention/README.md)
# Mask R-CNN + FPN with Agent-Swin-T, COCO 3x (36 epochs, steps at 27 and 33): the 1x recipe
# with the official 3x schedule (agent_swin_t_mrcnn_3x_9-12-14-7.py), whose warm-up stays at
# mmdet's 500 linear iterations (ratio 0.001).
_base_ = './mask-rcnn_agent-swin-t_fpn_1x_coco.py'
train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
