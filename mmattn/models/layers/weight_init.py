"""The conv init of the PVT v2 / Shunted official code: N(0, 2 / fan_out) weights, zero bias.

Its ``fan_out`` is ``k_h * k_w * out_channels / groups`` (so a depthwise conv's is ``k_h * k_w``),
which is not the ``fan_out`` of ``torch.nn.init.kaiming_normal_`` / mmengine's ``kaiming_init``
(those ignore ``groups``); hence this one helper instead of theirs.
"""

import math

import torch.nn as nn
from mmengine.model.weight_init import normal_init

__all__ = ['conv_fan_out_init']


def conv_fan_out_init(module: nn.Module) -> None:
    """Initialise every ``nn.Conv2d`` in ``module`` (itself included), in ``modules()`` order."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            normal_init(m, mean=0, std=math.sqrt(2.0 / fan_out), bias=0)
