"""Helpers the pyramid skeletons share: arch selection and the official default init."""
import copy
from typing import Iterable, Union

from mmengine.model.weight_init import trunc_normal_
from torch import nn


def select_arch(owner: str, arch_zoo: dict, arch_keys: Iterable[str],
                arch: Union[str, dict]) -> dict:
    """A copy of ``arch_zoo[arch]`` (name or alias) or of a custom dict holding ``arch_keys``.

    Raises:
        ValueError: Naming the valid names, or the keys a custom dict lacks.
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in arch_zoo:
            raise ValueError(f'unknown arch {arch!r} for {owner}; choose from '
                             f'{sorted(arch_zoo)} or give a dict with {sorted(arch_keys)}')
        return copy.deepcopy(arch_zoo[key])
    missing = set(arch_keys) - set(arch)
    if missing:
        raise ValueError(f'custom arch lacks {sorted(missing)}')
    return copy.deepcopy(dict(arch))


def init_linear_and_norm(module: nn.Module) -> None:
    """The official random init: truncated-normal Linear weights (std .02), zero biases, LN 1/0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0)
