"""The attention ops: token mixers with the contract ``op(x, hw_shape)`` on ``(B, H*W, C)``.

Importing this package registers every op in the ``mmattn`` scope. A new op file is imported
here and its registered classes are added to ``__all__``.
"""

from . import bra_flex  # noqa: F401  (BRA's optional block-sparse path; helpers only)
from .agent_attention import AgentAttention
from .base import AttentionWeights, BaseAttention, capture_attention
from .bi_level_routing_attention import BiLevelRoutingAttention, GlobalAttentionLePE
from .cross_shaped_window_attention import CSWinAttention
from .external_attention import (
    ExternalAttention,
    ExternalAttentionBlock,
    MultiHeadExternalAttention,
)
from .focused_linear_attention import FocusedLinearAttention
from .shift_window_msa import ShiftWindowMSA
from .shunted_self_attention import ShuntedSelfAttention
from .spatial_reduction_attention import SpatialReductionAttention

__all__ = [
    'AgentAttention',
    'AttentionWeights',
    'BaseAttention',
    'BiLevelRoutingAttention',
    'CSWinAttention',
    'ExternalAttention',
    'ExternalAttentionBlock',
    'FocusedLinearAttention',
    'GlobalAttentionLePE',
    'MultiHeadExternalAttention',
    'ShiftWindowMSA',
    'ShuntedSelfAttention',
    'SpatialReductionAttention',
    'capture_attention',
]
