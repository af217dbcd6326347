"""What every attention op shares: the input check and the attention weights it computed.

Ops subclass :class:`BaseAttention` (optional: any registered module with
``forward(x, hw_shape)`` works in the skeletons and the tools). What it adds:

- :meth:`BaseAttention.check_input`: the input contract (``(B, N, C)`` tokens, ``N == H*W``,
  any strides), a ``ValueError`` otherwise;
- **attention weights, from the op itself.** While :attr:`BaseAttention.attention_sink` is a
  list (the tools set it; see :func:`capture_attention`), each call of the op runs its
  plain-math path (never the fused kernel, which keeps no weights) and appends the weights it
  actually computed as :class:`AttentionWeights` (op-specific facts in ``meta``). The drawing
  tools (``mmattn/analysis/query_maps.py``) turn them into per-query maps. Recording is off by
  default and then costs one attribute check per call.

An op without recording still gets every tool: FLOPs and scaling need only registration, and
the attention-map tool falls back to an input-gradient saliency map.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmattn.models.layers.tokens import check_tokens

__all__ = ['AttentionWeights', 'BaseAttention', 'capture_attention']


@dataclass
class AttentionWeights:
    """Weights one op call computed, as rows from query tokens to keys.

    ``weights[b, h, q, k]`` is how much query ``q`` takes from column ``k``. Column ``k`` is
    the key ``key_index[b, q, k]`` of the ``key_hw`` grid when ``key_index`` is given (windows,
    routed regions), else key ``k`` itself. With ``then``, the weights are a product (query
    -> intermediate -> keys, e.g. agents or a linear-attention feature space): this record's
    columns are the rows of ``then`` (a dense factor), and ``key_hw`` of this record may be
    None.

    Attributes:
        title (str): What the weights are, for the map's title.
        weights (Tensor): ``(B, heads, Nq, K)``.
        query_hw (tuple[int, int], optional): The grid of the queries (None: not spatial).
        key_hw (tuple[int, int], optional): The grid of the keys (None: not spatial).
        key_index (Tensor, optional): ``(B, Nq, K)`` or ``(Nq, K)`` flat indices into
            ``key_hw``.
        valid_hw (tuple[int, int], optional): The part of ``key_hw`` on the image (window and
            region ops pad the map at the bottom/right). Defaults to ``key_hw``.
        then (AttentionWeights, optional): The next factor of a product.
        meta (dict): Op-specific facts for the drawing tools' overlays.
    """

    title: str
    weights: torch.Tensor
    query_hw: Optional[Tuple[int, int]]
    key_hw: Optional[Tuple[int, int]]
    key_index: Optional[torch.Tensor] = None
    valid_hw: Optional[Tuple[int, int]] = None
    then: Optional['AttentionWeights'] = None
    meta: Dict = field(default_factory=dict)

    def row(self, q: int, batch: int = 0) -> torch.Tensor:
        """``(heads, K_end)``: query ``q``'s weights on the last grid of the product."""
        w = self.weights[batch, :, q]  # (heads, K)
        if self.key_index is not None:
            idx = self.key_index[batch, q] if self.key_index.dim() == 3 else self.key_index[q]
            n = self.key_hw[0] * self.key_hw[1]
            w = w.new_zeros(w.shape[0], n).index_add_(1, idx, w)
        if self.then is None:
            return w
        nxt = self.then
        if nxt.key_index is not None or nxt.then is not None:
            raise ValueError('a product has two factors, the second one dense')
        return torch.einsum('hk,hkn->hn', w, nxt.weights[batch].to(w.dtype))

    def end_grid(self) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """``(key_hw, valid_hw)`` of the last factor."""
        last = self
        while last.then is not None:
            last = last.then
        return last.key_hw, last.valid_hw or last.key_hw


class BaseAttention(BaseModule):
    """Base of the attention ops: input check and recording of the computed weights."""

    #: a list while a tool records (see :func:`capture_attention`); None otherwise
    attention_sink: Optional[list] = None

    @property
    def recording(self) -> bool:
        """Whether this call must keep its weights (and therefore run the math path)."""
        return self.attention_sink is not None

    def init_heads(
        self,
        embed_dims: int,
        num_heads: int,
        qk_scale: Optional[float] = None,
        qk_dims: Optional[int] = None,
    ) -> None:
        """Check the head split and set ``embed_dims``, ``num_heads``, ``head_dims`` and
        ``scale`` (``qk_scale``, default ``(qk_dims / num_heads) ** -0.5``)."""
        qk_dims = qk_dims or embed_dims
        if embed_dims % num_heads or qk_dims % num_heads:
            raise ValueError(
                f'{type(self).__name__}: embed_dims ({embed_dims}) and qk_dims '
                f'({qk_dims}) must be divisible by num_heads ({num_heads}); '
                'change num_heads or the widths'
            )
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = qk_scale or (qk_dims // num_heads) ** -0.5

    def check_input(self, x: torch.Tensor, hw_shape: Sequence[int]) -> Tuple[int, int]:
        """``(H, W)`` of valid ``(B, H*W, C)`` tokens; ``ValueError`` otherwise."""
        return check_tokens(x, hw_shape, type(self).__name__)

    def emit(self, weights: AttentionWeights) -> None:
        """Hand ``weights`` (detached) to the recording tool, if any."""
        if self.attention_sink is not None:
            weights.weights = weights.weights.detach()
            nxt = weights.then
            while nxt is not None:
                nxt.weights = nxt.weights.detach()
                nxt = nxt.then
            self.attention_sink.append(weights)


@contextmanager
def capture_attention(module: nn.Module) -> Iterator[List[AttentionWeights]]:
    """Record the weights every :class:`BaseAttention` in ``module`` computes, in call order.

    Example::

        with capture_attention(backbone) as records, torch.no_grad():
            backbone(img)
        # records[i]: AttentionWeights, each with .weights the op computed
    """
    sink: List[AttentionWeights] = []
    ops = [m for m in module.modules() if isinstance(m, BaseAttention)]
    for op in ops:
        op.attention_sink = sink
    try:
        yield sink
    finally:
        for op in ops:
            op.attention_sink = None
