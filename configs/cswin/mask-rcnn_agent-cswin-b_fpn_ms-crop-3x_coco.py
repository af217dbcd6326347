# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Mask R-CNN + FPN with Agent-CSWin-B, COCO 3x (36 epochs, steps at 27 and 33):
# the 1x recipe (same multi-scale + crop augmentation, optimizer and drop path) with
# Swin's 3x schedule (mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py),
# which the CSWin paper follows for its Mask R-CNN 3x results.
_base_ = './mask-rcnn_agent-cswin-b_fpn_1x_coco.py'
train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
