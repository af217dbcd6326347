"""Bricks the ops and backbones share (blocks, patch embeddings, token layout, op building)."""

from .attn_builder import build_attention, expand_attn_cfgs
from .block import Mlp, TransformerBlock
from .patch_embed import ConvPatchEmbed
from .tokens import map_to_tokens, tokens_to_map

__all__ = [
    'ConvPatchEmbed',
    'Mlp',
    'TransformerBlock',
    'build_attention',
    'expand_attn_cfgs',
    'map_to_tokens',
    'tokens_to_map',
]
