"""mmattn models. Importing this package registers all of them in the ``mmattn`` scope.

Configs load it with ``custom_imports = dict(imports=['mmattn.models'])``.
"""
from . import attentions, backbones, layers  # noqa: F401
from mmattn import engine  # noqa: F401  (CPUAmpOptimWrapper)
