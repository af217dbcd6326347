"""Attention on chosen levels of any neck: :class:`AttentionNeck`.

The wrapped neck is another package's module (MMDetection's ``FPN``, ``PAFPN``,
``CSPNeXtPAFPN``, ``YOLOXPAFPN``, MMSegmentation's ``FPN``, ...). mmattn's core never imports
those packages (STYLE.md section 2); :func:`build_foreign` finds the neck's type in whichever
registry scope holds it, so an unprefixed ``type='CSPNeXtPAFPN'`` in an mmdet config works
although this wrapper itself is built in the ``mmattn`` scope.
"""

import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from mmattn.registry import MODELS, build_module

__all__ = ['AttentionNeck', 'build_foreign']


def _holds(registry, name: str) -> bool:
    registry.import_from_location()  # a registry imports its modules on first use
    return name in registry.module_dict


def build_foreign(cfg: dict, owner: str = 'AttentionNeck') -> nn.Module:
    """Build a module of any registered package from ``cfg``, whatever scope is current.

    A prefixed type (``'mmdet.FPN'``) is built in its scope. An unprefixed one is looked up in
    the current default scope first (an mmdet config builds under ``mmdet``), then in every
    imported scope; it must be found in exactly one of them.

    Args:
        cfg (dict): The module's config, with ``type``.
        owner (str): Who asks, for the messages.

    Returns:
        nn.Module: The built module.

    Raises:
        KeyError: The type is registered nowhere, or in several scopes (name them).
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'{owner}: expected a config dict with a "type" key, got {cfg!r}')
    cfg = copy.deepcopy(dict(cfg))
    name = cfg['type']
    if not isinstance(name, str) or '_scope_' in cfg:
        return ROOT_MODELS.build(cfg)
    if '.' in name:
        scope, name = name.split('.', 1)
    else:
        scopes = {ROOT_MODELS.scope: ROOT_MODELS, **ROOT_MODELS.children}
        current = DefaultScope.get_current_instance()
        current = current.scope_name if current is not None else None
        if current in scopes and current != 'mmattn' and _holds(scopes[current], name):
            scope = current
        else:
            found = sorted(s for s, reg in scopes.items() if _holds(reg, name))
            if len(found) != 1:
                where = (
                    f'in several scopes ({", ".join(found)})'
                    if found
                    else f'in no imported scope ({", ".join(sorted(scopes))})'
                )
                raise KeyError(
                    f'{owner}: module type {name!r} is registered {where}; prefix it with its '
                    f"package, e.g. type='mmdet.{name}', and import that package (an mmdet or "
                    'mmseg config does)'
                )
            scope = found[0]
    cfg['type'] = name
    cfg['_scope_'] = scope  # nested builds of the module resolve in its own package
    return ROOT_MODELS.build(cfg)


@MODELS.register_module()
class AttentionNeck(BaseModule):
    """A neck with :class:`~mmattn.models.plugins.AttentionPlugin` s on chosen levels.

    ``where='in'`` runs a plug-in on the chosen *input* levels (backbone maps) before the neck;
    ``where='out'`` on the chosen *output* levels after it. The neck's outputs keep their number
    and shapes, and each plug-in starts as the identity, so the wrapped neck computes exactly
    what the plain neck computes until training moves the plug-ins' scales. A plain neck's
    weights (a detector trained without the plug-ins) load into the wrapped neck as they are::

        neck=dict(type='mmattn.AttentionNeck',
                  neck=dict(type='CSPNeXtPAFPN', in_channels=[96, 192, 384], out_channels=96,
                            num_csp_blocks=1, expand_ratio=0.5),
                  plugin=dict(attn_cfg=dict(type='AgentAttention')),
                  levels=(0, 1, 2), where='in', map_sizes=(80, 40, 20))

    Args:
        neck (dict): The wrapped neck's config (any registered neck; see :func:`build_foreign`).
        plugin (dict | list[dict]): The plug-in of every chosen level (a dict), or one per level
            (a list). ``type`` defaults to ``'AttentionPlugin'``; ``in_channels`` is filled in.
        levels (Sequence[int], optional): The levels to equip (negative ones count from the
            last). Defaults to None: every level.
        where (str): ``'in'`` or ``'out'``. Defaults to ``'in'``.
        map_sizes (Sequence, optional): Nominal map size of each chosen level (an int or
            ``(H, W)``), given to its plug-in as ``map_size``. Defaults to None (the plug-ins'
            own default).
        channels (Sequence[int], optional): Channels of each chosen level, for a neck whose
            config has no ``in_channels`` list (``where='in'``) or ``out_channels``
            (``where='out'``). Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(
        self,
        neck: dict,
        plugin: Union[dict, Sequence[dict]],
        levels: Optional[Sequence[int]] = None,
        where: str = 'in',
        map_sizes: Optional[Sequence] = None,
        channels: Optional[Sequence[int]] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if where not in ('in', 'out'):
            raise ValueError(f"AttentionNeck: where must be 'in' or 'out', got {where!r}")
        if not isinstance(neck, dict) or 'type' not in neck:
            raise TypeError(f'AttentionNeck: neck must be a neck config dict, got {neck!r}')
        self.where = where
        self.neck = build_foreign(neck)
        # what the first consumer of backbone features expects (configs and tests read it)
        if hasattr(self.neck, 'in_channels'):
            self.in_channels = self.neck.in_channels
        num_levels, level_channels = self._level_channels(neck, where)
        if levels is None:
            if num_levels is None:
                raise ValueError(
                    'AttentionNeck: give levels=... (the neck config does not say '
                    f'how many {where}put levels it has)'
                )
            levels = range(num_levels)
        self.levels = self._check_levels(levels, num_levels)
        n = len(self.levels)
        if channels is not None:
            if len(channels) != n:
                raise ValueError(
                    f'AttentionNeck: channels has {len(channels)} entries for the '
                    f'{n} levels {self.levels}'
                )
            level_channels = {lv: int(c) for lv, c in zip(self.levels, channels)}
        missing = [lv for lv in self.levels if level_channels.get(lv) is None]
        if missing:
            key = 'in_channels' if where == 'in' else 'out_channels'
            raise ValueError(
                f'AttentionNeck: the channels of levels {missing} are unknown: the '
                f'neck config has no {key} for them; give channels=[...]'
            )
        plugins = [plugin] * n if isinstance(plugin, dict) else list(plugin)
        if len(plugins) != n or not all(isinstance(p, dict) for p in plugins):
            raise ValueError(
                f'AttentionNeck: plugin must be one config dict or a list of {n} '
                f'(one per level {self.levels}), got {plugin!r}'
            )
        if map_sizes is not None and len(map_sizes) != n:
            raise ValueError(
                f'AttentionNeck: map_sizes has {len(map_sizes)} entries for the '
                f'{n} levels {self.levels}'
            )
        self.plugins = nn.ModuleDict()
        for i, (lv, cfg) in enumerate(zip(self.levels, plugins)):
            cfg = dict(cfg)
            cfg.setdefault('type', 'AttentionPlugin')
            cfg['in_channels'] = level_channels[lv]
            if map_sizes is not None:
                cfg['map_size'] = map_sizes[i]
            self.plugins[str(lv)] = build_module(cfg)
        self._register_load_state_dict_pre_hook(self._plain_neck_keys)

    @staticmethod
    def _plain_neck_keys(state_dict, prefix, *args) -> None:
        """Load a plain neck's weights (e.g. a COCO-trained detector's ``neck.*``, via
        ``load_from``): keys of this module that are neither ``neck.*`` nor ``plugins.*`` are
        the wrapped neck's."""
        for key in [k for k in state_dict if k.startswith(prefix)]:
            rest = key[len(prefix) :]
            if not rest.startswith(('neck.', 'plugins.')):
                state_dict[prefix + 'neck.' + rest] = state_dict.pop(key)

    @staticmethod
    def _level_channels(neck: dict, where: str) -> Tuple[Optional[int], dict]:
        """``(number of levels or None, {level: channels})`` read off the neck config."""
        in_ch = neck.get('in_channels')
        in_ch = list(in_ch) if isinstance(in_ch, (list, tuple)) else None
        if where == 'in':
            return (len(in_ch) if in_ch else None), dict(enumerate(in_ch or []))
        out = neck.get('out_channels')
        num = (
            neck.get('num_outs')
            or (len(out) if isinstance(out, (list, tuple)) else None)
            or (len(in_ch) if in_ch else None)
        )
        if isinstance(out, (list, tuple)):
            return num, dict(enumerate(out))
        return num, ({lv: int(out) for lv in range(num)} if out is not None and num else {})

    def _check_levels(self, levels: Sequence[int], num_levels: Optional[int]) -> List[int]:
        out = []
        for lv in levels:
            if isinstance(lv, bool) or not isinstance(lv, int):
                raise TypeError(f'AttentionNeck: levels must be ints, got {levels!r}')
            if num_levels is not None:
                if not -num_levels <= lv < num_levels:
                    raise ValueError(
                        f'AttentionNeck: level {lv} does not exist: the neck has '
                        f'{num_levels} {self.where}put levels (0-{num_levels - 1})'
                    )
                lv %= num_levels
            elif lv < 0:
                raise ValueError(
                    f'AttentionNeck: level {lv}: negative levels need a neck '
                    'config that gives its number of levels'
                )
            out.append(lv)
        if len(set(out)) != len(out):
            raise ValueError(f'AttentionNeck: levels {list(levels)} name a level twice')
        return out

    def _equip(self, maps: Sequence[torch.Tensor], stage: str) -> Tuple[torch.Tensor, ...]:
        maps = list(maps)
        for lv in self.levels:
            if lv >= len(maps):
                raise ValueError(
                    f'AttentionNeck: a plug-in sits on {stage} level {lv}, but the '
                    f'{stage} has {len(maps)} levels'
                )
            maps[lv] = self.plugins[str(lv)](maps[lv])
        return tuple(maps)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Args: inputs: the backbone's maps. Returns: tuple: the neck's maps."""
        if self.where == 'in':
            return self.neck(self._equip(inputs, 'input'))
        return self._equip(self.neck(inputs), 'output')
