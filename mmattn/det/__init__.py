"""mmdet-dependent modules (the instance-segmentation TTA merger). Import through a config's
``custom_imports`` (``imports=['mmattn.models', 'mmattn.det']``); ``tools/test.py --tta`` imports
it itself.

Kept out of :mod:`mmattn.models`, which must import with mmengine + mmcv alone.
"""

from .tta import InstanceSegTTAModel

__all__ = ['InstanceSegTTAModel']
