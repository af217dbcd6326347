"""mmseg-dependent modules (decode heads). Import through a config's ``custom_imports``:

``custom_imports = dict(imports=['mmattn.models', 'mmattn.seg'], allow_failed_imports=False)``.

Kept out of :mod:`mmattn.models`, which must import with mmengine + mmcv alone.
"""

from .ea_head import EAHead

__all__ = ['EAHead']
