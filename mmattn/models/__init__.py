"""mmattn models. Importing this package registers all of them in the ``mmattn`` scope.

Configs load it with ``custom_imports = dict(imports=['mmattn.models'])``.
"""
from mmattn import engine  # noqa: F401  (CPUAmpOptimWrapper)

from . import attentions, backbones, layers, plugins  # noqa: F401
