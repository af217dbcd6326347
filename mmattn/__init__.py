"""mmattn: efficient attention backbones for MMDetection 3.x and MMSegmentation 1.x.

Importing mmattn (or ``mmattn.models``) only registers modules, and the ``mmattn::`` config
prefix with MMEngine. The safe checkpoint loader is
installed by ``tools/train.py`` / ``tools/test.py``, or by importing :mod:`mmattn.safe_loading`
(for MMDetection's and MMSegmentation's own tools, through ``custom_imports``).
"""

from mmengine.config.utils import MODULE2PACKAGE

from .version import __version__

# Lets MMEngine (and mim) resolve `mmattn::<family>/<config>.py` through the installed package's
# .mim/configs, as it does for `mmdet::` and `mmseg::`.
MODULE2PACKAGE.setdefault('mmattn', 'mmattn')

__all__ = ['__version__']
