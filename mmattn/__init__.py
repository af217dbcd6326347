"""mmattn: efficient attention backbones for MMDetection 3.x and MMSegmentation 1.x.

Importing mmattn (or ``mmattn.models``) only registers modules. The safe checkpoint loader is
installed by ``tools/train.py`` / ``tools/test.py``, or by importing :mod:`mmattn.safe_loading`
(for MMDetection's and MMSegmentation's own tools, through ``custom_imports``).
"""
from .version import __version__

__all__ = ['__version__']
