"""mmattn's registries: children of MMEngine's root so mmdet/mmseg configs reach them.

A config whose default scope is ``mmdet`` or ``mmseg`` names our modules with the scope
prefix (``type='mmattn.AgentPVT'``) after ``custom_imports=dict(imports=['mmattn.models'])``.
Inside mmattn, sub-modules must be built with :func:`build_module`, which pins the scope:
a plain ``MODELS.build(dict(type='AgentAttention'))`` under a running mmdet scope looks the
name up in mmdet's registry and fails (see STYLE.md, section 2).
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry
from mmengine.registry.build_functions import build_model_from_cfg


def _build_in_own_scope(cfg, registry, default_args=None):
    """MMEngine's model build, with the registry's own scope as the default.

    MMEngine resolves an unprefixed type in the *current default scope*, so after any mmdet or
    mmseg config has run in the process, ``mmattn.registry.MODELS.build(dict(type='BiFormer'))``
    would look in mmdet's registry and fail. Building from mmattn's registry means the mmattn
    scope unless the config says otherwise (``_scope_`` or a prefixed type).
    """
    if isinstance(cfg, dict) and '_scope_' not in cfg:
        cfg = cfg.copy()
        cfg['_scope_'] = registry.scope
    return build_model_from_cfg(cfg, registry, default_args)


MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmattn',
    locations=['mmattn.models'],
    build_func=_build_in_own_scope,
)
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmattn', locations=['mmattn.engine']
)


def build_module(cfg: dict, **default_args):
    """Build ``cfg`` from mmattn's MODELS whatever scope is current.

    Args:
        cfg (dict): Config with ``type``; an unprefixed type is looked up in the mmattn scope.
        **default_args: Arguments that ``cfg`` may override.

    Returns:
        torch.nn.Module: The built module.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'expected a config dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmattn')
    name = cfg['type']
    if isinstance(name, str) and '.' not in name and MODELS.get(name) is None:
        known = sorted(k for k in MODELS.module_dict)
        raise KeyError(
            f'unknown mmattn module type {name!r}; registered types are: {", ".join(known)}'
        )
    return MODELS.build(cfg, default_args=default_args or None)
