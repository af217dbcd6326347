"""The backbones: skeletons that compose attention ops, one family per file.

Importing this package registers every backbone in the ``mmattn`` scope. A new backbone file is
imported here and its registered classes are added to ``__all__``.
"""

from .base import BaseBackbone
from .biformer import BiFormer
from .cswin import AgentCSWin, CSWin, FLattenCSWin
from .ea_pvt import EAPVT
from .flatten import FLattenPVT, FLattenPVTv2, FLattenSwin
from .pvt import AgentPVT, PyramidVisionTransformerSkeleton
from .shunted import ShuntedTransformer
from .swin import AgentSwin, SwinTransformerSkeleton

__all__ = [
    'AgentCSWin',
    'AgentPVT',
    'AgentSwin',
    'BaseBackbone',
    'BiFormer',
    'CSWin',
    'EAPVT',
    'FLattenCSWin',
    'FLattenPVT',
    'FLattenPVTv2',
    'FLattenSwin',
    'PyramidVisionTransformerSkeleton',
    'ShuntedTransformer',
    'SwinTransformerSkeleton',
]
