"""Linear interpolation as a matrix, for resizing small learned tables with matrix products.

``F.interpolate(x, size, mode='bilinear', align_corners=False)`` is separable: every output
row is a fixed mix of two input rows, every output column of two input columns, so it equals
``Wh @ x @ Ww^T`` with two sparse interpolation matrices that depend only on the sizes. For
the learned bias tables of Agent attention (resized to the feature map in every block, with a
gradient in training) the product form matters: torch's CPU backward of
``upsample_bilinear2d`` scatters one gradient element at a time and took 11 % of Agent-PVT-S's
training step at 512x512, while a product's backward is more small GEMMs; being linear, the
resizes can also be reordered and merged (``AgentAttention.bias_factors``: each bias becomes a
small learned factor times a constant basis).

The 1-D matrices depend on the sizes alone and are cached (``size_cache.py``; they are small:
``n_out x n_in``). Building one takes about twenty tiny ops; on a GPU, where every op is a
kernel launch, the rebuilt matrices of every Agent block made Agent-PVT-S's inference at
512x512 launch-bound (H100, fp16 AMP: 0.56x the official speed; 1.03x cached).
"""

from typing import Sequence

import torch

from .size_cache import SizeKeyedCache

__all__ = ['linear_interp_matrix', 'bilinear_matrix']

_MATRICES = SizeKeyedCache(max_entries=256)  # a few KiB each


def linear_interp_matrix(n_in: int, n_out: int, dtype: torch.dtype,
                         device: torch.device) -> torch.Tensor:
    """``(n_out, n_in)`` weights of 1-D linear interpolation as ``F.interpolate`` computes it.

    Half-pixel centres (``align_corners=False``), source positions clamped at 0 below and the
    last sample above, no antialiasing when shrinking: ``src = max((i + .5) * n_in / n_out - .5,
    0)``, weight ``1 - frac(src)`` on ``floor(src)`` and ``frac(src)`` on the next sample.

    The result is cached per ``(n_in, n_out, dtype, device)`` and must not be written to.
    """
    return _MATRICES.get((n_in, n_out, dtype, torch.device(device)),
                         lambda: _build_linear_interp_matrix(n_in, n_out, dtype, device))


def _build_linear_interp_matrix(n_in: int, n_out: int, dtype: torch.dtype,
                                device: torch.device) -> torch.Tensor:
    src = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)
           - 0.5).clamp(min=0)
    lo = src.floor()
    frac = (src - lo)[:, None]
    lo = lo.long().clamp(max=n_in - 1)[:, None]
    hi = (lo + 1).clamp(max=n_in - 1)
    cols = torch.arange(n_in, device=device)[None, :]
    weights = (cols == lo) * (1 - frac) + (cols == hi) * frac
    return weights.to(dtype)


def bilinear_matrix(src_hw: Sequence[int], dst_hw: Sequence[int], dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """``(H * W, h * w)`` weights of ``F.interpolate(mode='bilinear', align_corners=False)`` on
    row-major flattened maps: the Kronecker product of the row and column matrices.

    Written as a broadcast product: ``torch.kron`` makes ``torch.compile`` specialise on the
    sizes (one recompile per input size).
    """
    rows = linear_interp_matrix(src_hw[0], dst_hw[0], dtype, device)  # (H, h)
    cols = linear_interp_matrix(src_hw[1], dst_hw[1], dtype, device)  # (W, w)
    return (rows[:, None, :, None] * cols[None, :, None, :]).reshape(
        rows.shape[0] * cols.shape[0], rows.shape[1] * cols.shape[1])
