# COCO 2017 instance segmentation; expects data/coco/{train2017,val2017,annotations}.
# Test-time augmentation: ../tta/coco_instance_tta.py (also used by recipes on mmdet's bases).
_base_ = ['mmdet::_base_/datasets/coco_instance.py', '../tta/coco_instance_tta.py']
