"""Plug-ins: any registered attention op inside a CNN or around a neck.

:class:`AttentionPlugin` runs an op on NCHW maps (mmcv plug-in contract, identity at
insertion); :class:`AttentionNeck` puts plug-ins on chosen levels of any neck.
"""

from .attention_neck import AttentionNeck, build_foreign
from .attention_plugin import AttentionPlugin, plugin_facts, plugin_heads

__all__ = ['AttentionPlugin', 'AttentionNeck', 'plugin_facts', 'plugin_heads', 'build_foreign']
