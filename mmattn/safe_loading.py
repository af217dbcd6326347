"""Importing this module installs mmattn's safe checkpoint loader into MMEngine.

It exists for runs started by MMDetection's or MMSegmentation's own ``tools/train.py`` /
``tools/test.py``, which import only what a config's ``custom_imports`` names::

    custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'],
                          allow_failed_imports=False)

Every local checkpoint MMEngine then loads (resume, ``load_from``, ``init_cfg=dict(type=
'Pretrained')``) goes through torch's ``weights_only`` unpickler plus an allow-list of exactly
the types MMEngine writes (:func:`mmattn.utils.checkpoint.safe_load`); this is also what lets
``--resume`` work on torch >= 2.6. mmattn's own tools install it explicitly and need no import.
"""

from .utils.checkpoint import install_safe_checkpoint_loader

install_safe_checkpoint_loader()
