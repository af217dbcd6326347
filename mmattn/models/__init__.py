"""mmattn models. Importing this package registers all of them in the ``mmattn`` scope.

Configs load it with ``custom_imports = dict(imports=['mmattn.models'])``. The training
machinery (``mmattn.engine``, e.g. ``CPUAmpOptimWrapper``) is found by the registries'
``locations`` when a config names it, so the models do not import it.
"""

from . import attentions, backbones, layers, plugins  # noqa: F401
