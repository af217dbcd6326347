"""Bi-level routing attention as block-sparse attention (``flex_attention`` + ``BlockMask``).

In BRA (Zhu et al., CVPR 2023) the map is cut into ``P = n_win**2`` regions of ``w2`` tokens and
every query region attends to the tokens of its ``topk`` routed regions. With the tokens laid
out region by region (region-major order), that is ordinary attention under a block mask whose
blocks are the regions: query block ``p`` sees key blocks ``r_idx[b, p, :]`` and nothing else.
:func:`torch.nn.attention.flex_attention.flex_attention` runs it from a ``BlockMask`` without
gathering the routed keys and values (the gather path materialises ``topk`` copies of K and V,
and the official op a ``P``-fold gradient buffer).

Two facts of torch 2.13 this module is built around:

- the ``BlockMask`` is made directly from the top-k indices with
  :meth:`BlockMask.from_kv_blocks` (cheap), not with ``create_block_mask`` and a mask function,
  which evaluates all ``N x N`` token pairs;
- the routed blocks are given as *partial* blocks (with a ``mask_mod``): given as
  *full* blocks (``full_kv_num_blocks``), Inductor's C++ code generation failed on CPU.

``flex_attention`` is fast only when compiled: eagerly, torch evaluates ``mask_mod`` on the
dense ``N x N`` score matrix (exact here, since the ``mask_mod`` repeats the routing, but slow).
:func:`bra_flex_attention` calls a compiled kernel when run eagerly, and the plain function when
it is itself being traced by ``torch.compile`` (the whole backbone compiled). On CPU, torch 2.13
has no ``flex_attention`` backward: use it for inference there (the op falls back to its gather
path when gradients are needed).

On CUDA it is not a win (docs/benchmark.md): Triton's flex kernel needs block sizes divisible
by its tiles, so most region sizes fail to compile, and where it compiled it was slower than the
gather + SDPA path, which is BRA's CUDA default.
"""

from typing import Optional

import torch

try:
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
except ImportError:  # an older torch: mmattn imports; only this path refuses (_require_flex)
    BlockMask = flex_attention = None

__all__ = ['regions_to_tokens', 'tokens_to_regions', 'routed_block_mask', 'bra_flex_attention']

_COMPILED = {}


def _require_flex() -> None:
    if flex_attention is None:
        raise ImportError(
            'the block-sparse BRA path needs torch.nn.attention.flex_attention, '
            f'which torch {torch.__version__} lacks; upgrade torch, or use '
            'BiLevelRoutingAttention (its gather path needs no flex_attention)'
        )


def regions_to_tokens(x: torch.Tensor, n_win: int, num_heads: int) -> torch.Tensor:
    """``(B, n_win*rh, n_win*rw, heads*d)`` map -> ``(B, heads, P*w2, d)`` in region-major order.

    Token ``p * w2 + t`` is token ``t`` (row-major inside the region) of region ``p`` (row-major
    over the ``n_win x n_win`` grid), so region ``p`` is the ``p``-th block of ``w2`` tokens.
    """
    b, hp, wp, c = x.shape
    rh, rw = hp // n_win, wp // n_win
    if rh * n_win != hp or rw * n_win != wp:
        raise ValueError(
            f'a {hp}x{wp} map does not split into {n_win}x{n_win} regions; pad it '
            'to multiples of n_win first'
        )
    d = c // num_heads
    x = x.reshape(b, n_win, rh, n_win, rw, num_heads, d).permute(0, 5, 1, 3, 2, 4, 6)
    return x.reshape(b, num_heads, n_win * n_win * rh * rw, d)


def tokens_to_regions(x: torch.Tensor, n_win: int, rh: int, rw: int) -> torch.Tensor:
    """Inverse of :func:`regions_to_tokens`: ``(B, heads, P*w2, d)`` -> ``(B, Hp, Wp, heads*d)``."""
    b, m, _, d = x.shape
    x = x.reshape(b, m, n_win, n_win, rh, rw, d).permute(0, 2, 4, 3, 5, 1, 6)
    return x.reshape(b, n_win * rh, n_win * rw, m * d)


def routed_block_mask(r_idx: torch.Tensor, region_tokens: int) -> 'BlockMask':
    """The ``BlockMask`` of BRA: query region ``p`` sees key regions ``r_idx[:, p]``.

    Args:
        r_idx (Tensor): ``(B, P, topk)`` routed region indices (same for every head).
        region_tokens (int): ``w2``, tokens per region (the block size on both axes).

    Returns:
        BlockMask: For ``(B, 1, P * w2, P * w2)`` attention (broadcast over heads).
    """
    _require_flex()
    b, p, topk = r_idx.shape
    kv_num = torch.full((b, 1, p), topk, dtype=torch.int32, device=r_idx.device)
    # Columns past topk are never read (kv_num says how many are valid).
    kv_idx = torch.zeros(b, 1, p, p, dtype=torch.int32, device=r_idx.device)
    kv_idx[..., :topk] = r_idx.unsqueeze(1).to(torch.int32)
    n = p * region_tokens
    # NOTE: the mask_mod repeats the routing token by token. Compiled kernels only visit the
    # listed blocks, where it is all true; torch's eager flex_attention ignores the block
    # lists and evaluates mask_mod densely, so this keeps that path exact too.
    allowed = torch.zeros(b, p, p, dtype=torch.bool, device=r_idx.device)
    allowed.scatter_(2, r_idx, True)

    def routed(bi, h, q_idx, kv_idx):
        return allowed[bi, q_idx // region_tokens, kv_idx // region_tokens]

    return BlockMask.from_kv_blocks(
        kv_num,
        kv_idx,
        BLOCK_SIZE=(region_tokens, region_tokens),
        mask_mod=routed,
        seq_lengths=(n, n),
    )


def _kernel():
    if torch.compiler.is_compiling():
        return flex_attention
    key = 'flex'
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(flex_attention, dynamic=False)
    return _COMPILED[key]


def bra_flex_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    r_idx: torch.Tensor,
    region_tokens: int,
    scale: Optional[float] = None,
    compiled: bool = True,
) -> torch.Tensor:
    """Softmax attention of each query region over the tokens of its routed regions.

    Args:
        q (Tensor): ``(B, heads, P*w2, d_qk)`` queries in region-major order
            (:func:`regions_to_tokens`).
        k (Tensor): ``(B, heads, P*w2, d_qk)`` keys, same order.
        v (Tensor): ``(B, heads, P*w2, d_v)`` values, same order.
        r_idx (Tensor): ``(B, P, topk)`` routed key regions of every query region.
        region_tokens (int): ``w2``.
        scale (float, optional): Logit scale. Defaults to ``d_qk ** -0.5``.
        compiled (bool): Use the compiled kernel when called eagerly (False: torch's eager
            reference, exact but slow and ``O(N^2)`` in memory). Defaults to True.

    Returns:
        Tensor: ``(B, heads, P*w2, d_v)``.
    """
    _require_flex()
    n = q.shape[-2]
    if n % region_tokens or n // region_tokens != r_idx.shape[1]:
        raise ValueError(f'{n} tokens are not {r_idx.shape[1]} regions of {region_tokens}')
    block_mask = routed_block_mask(r_idx, region_tokens)
    fn = _kernel() if compiled else flex_attention
    return fn(q, k, v, block_mask=block_mask, scale=scale)
