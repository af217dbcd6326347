"""Resizing learned position tables: by ``F.interpolate``, and as interpolation matrices.

:func:`resize_pos_table` resizes a ``(1, h0 * w0, C)`` token table to another map (PVT's
position embedding, FLatten's positional encoding).

``F.interpolate(x, size, mode='bilinear', align_corners=False)`` is separable: every output
row is a fixed mix of two input rows, every output column of two input columns, so it equals
``Wh @ x @ Ww^T`` with two sparse interpolation matrices that depend only on the sizes. For
Agent attention's bias tables (resized in every block, with a gradient in training) the
product form is faster than ``upsample_bilinear2d``'s CPU backward, which scatters one element
at a time, and, being linear, the resizes can be merged (``AgentAttention.bias_factors``).
The 1-D matrices depend on the sizes alone and are cached, so a GPU does not rebuild them
with a score of tiny kernel launches in every block (docs/benchmark.md has the measurements).
"""

from typing import Sequence

import torch
import torch.nn.functional as F

from .size_cache import SizeKeyedCache
from .tokens import map_to_tokens

__all__ = ['linear_interp_matrix', 'bilinear_matrix', 'resize_pos_table']

_MATRICES = SizeKeyedCache(max_entries=256)  # a few KiB each


def linear_interp_matrix(
    n_in: int, n_out: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(n_out, n_in)`` weights of 1-D linear interpolation as ``F.interpolate`` computes it.

    Half-pixel centres (``align_corners=False``), source positions clamped at 0 below and the
    last sample above, no antialiasing when shrinking: ``src = max((i + .5) * n_in / n_out - .5,
    0)``, weight ``1 - frac(src)`` on ``floor(src)`` and ``frac(src)`` on the next sample.

    The result is cached per ``(n_in, n_out, dtype, device)`` and must not be written to.
    """
    return _MATRICES.get(
        (n_in, n_out, dtype, torch.device(device)),
        lambda: _build_linear_interp_matrix(n_in, n_out, dtype, device),
    )


def _build_linear_interp_matrix(
    n_in: int, n_out: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    src = (
        (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    ).clamp(min=0)
    lo = src.floor()
    frac = (src - lo)[:, None]
    lo = lo.long().clamp(max=n_in - 1)[:, None]
    hi = (lo + 1).clamp(max=n_in - 1)
    cols = torch.arange(n_in, device=device)[None, :]
    weights = (cols == lo) * (1 - frac) + (cols == hi) * frac
    return weights.to(dtype)


def bilinear_matrix(
    src_hw: Sequence[int], dst_hw: Sequence[int], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(H * W, h * w)`` weights of ``F.interpolate(mode='bilinear', align_corners=False)`` on
    row-major flattened maps: the Kronecker product of the row and column matrices.

    Written as a broadcast product: ``torch.kron`` makes ``torch.compile`` specialise on the
    sizes (one recompile per input size).
    """
    rows = linear_interp_matrix(src_hw[0], dst_hw[0], dtype, device)  # (H, h)
    cols = linear_interp_matrix(src_hw[1], dst_hw[1], dtype, device)  # (W, w)
    return (rows[:, None, :, None] * cols[None, :, None, :]).reshape(
        rows.shape[0] * cols.shape[0], rows.shape[1] * cols.shape[1]
    )


def resize_pos_table(
    table: torch.Tensor, src_hw: Sequence[int], dst_hw: Sequence[int], mode: str = 'bilinear'
) -> torch.Tensor:
    """Resize a learned ``(1, h0 * w0, C)`` token table to ``(1, H * W, C)``.

    The table is read as a row-major ``h0 x w0`` grid (the token order of every backbone here)
    and resampled with ``F.interpolate(..., align_corners=False)``; at ``(H, W) == (h0, w0)``
    the table itself is returned, so pretraining-size inputs reproduce the checkpoint exactly.

    Args:
        table (Tensor): ``(1, h0 * w0, C)``.
        src_hw (Sequence[int]): ``(h0, w0)``.
        dst_hw (Sequence[int]): ``(H, W)``.
        mode (str): Interpolation mode. Defaults to ``'bilinear'``.

    Returns:
        Tensor: ``(1, H * W, C)``.
    """
    src_hw, dst_hw = tuple(src_hw), tuple(dst_hw)
    if src_hw == dst_hw:
        return table
    h0, w0 = src_hw
    if table.shape[1] != h0 * w0:
        raise ValueError(f'position table has {table.shape[1]} tokens, expected {h0}x{w0}')
    grid = table.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=dst_hw, mode=mode, align_corners=False)
    return map_to_tokens(grid)
