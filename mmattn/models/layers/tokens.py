"""NCHW map <-> (B, N, C) token sequence, in the layout that keeps BatchNorm's backward right.

``x.flatten(2).transpose(1, 2)`` is the usual spelling, but its backward hands the upstream
layer a gradient with channels-last strides whose batch stride, for a batch of one, is not the
canonical ``H * W * C``. On torch 2.13's CPU kernels ``BatchNorm2d``'s backward (train and eval
mode, fp32 and fp64) then returns wrong input, weight and bias gradients: off by the size of the
gradient itself. Forward values are unaffected, so nothing but a gradient check notices. Going
through NHWC (``permute`` then ``flatten``) gives the canonical strides and the right gradient.
Use these two helpers wherever a BatchNorm's output can reach a token sequence without a
convolution in between (e.g. a stem or a downsampling layer that ends in BN, feeding blocks).
``tests/test_reliability/test_batch_independence.py`` checks every backbone for this.

The same canonical strides decide speed: CPU convolutions, pooling and interpolation pick their
channels-last kernels from the strides, and ``x.transpose(1, 2).reshape(B, C, H, W)`` of a
batch of one has a batch stride of ``C``, so they read it as NCHW and make a transposed copy of
it in forward and again in backward (docs/benchmark.md). :func:`tokens_to_map` gives a
channels-last view that they take as it is, and :func:`map_to_tokens` of their channels-last
output is a view again. Every token <-> map change in the package goes through these two.

:func:`check_tokens` is the input check every attention op starts with, and
:func:`pad_map_to` the right/bottom zero padding of window and region attentions.
"""

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ['map_to_tokens', 'tokens_to_map', 'check_tokens', 'pad_map_to']


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H * W, C), row-major over H, W (same values as flatten/transpose)."""
    if x.dim() != 4:
        raise ValueError(f'map_to_tokens: expected a (B, C, H, W) map, got shape {tuple(x.shape)}')
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def tokens_to_map(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """(B, H * W, C) -> (B, C, H, W), the inverse of :func:`map_to_tokens`."""
    if x.dim() != 3:
        raise ValueError(f'tokens_to_map: expected (B, N, C) tokens, got shape {tuple(x.shape)}')
    b, n, c = x.shape
    h, w = hw
    if n != h * w:
        raise ValueError(f'tokens_to_map: {n} tokens cannot form a {h} x {w} map')
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


def check_tokens(x: torch.Tensor, hw_shape: Sequence[int], owner: str) -> Tuple[int, int]:
    """The input contract of every attention op: ``(B, N, C)`` tokens with ``N == H * W``.

    Args:
        x (Tensor): Tokens, any strides (ops reshape, never ``view``, their input).
        hw_shape (Sequence[int]): ``(H, W)`` of the map the tokens come from.
        owner (str): The op's name, for the message.

    Returns:
        tuple[int, int]: ``(H, W)`` as ints.

    Raises:
        ValueError: ``x`` is not 3-D, or ``N != H * W``.
    """
    if x.dim() != 3:
        raise ValueError(f'{owner}: expected (B, N, C) tokens, got shape {tuple(x.shape)}')
    # int() of a symbolic size would fix it in an exported graph (torch.export, ONNX)
    h, w = (v if isinstance(v, torch.SymInt) else int(v) for v in hw_shape)
    if x.shape[1] != h * w:
        raise ValueError(
            f'{owner}: {x.shape[1]} tokens do not form the hw_shape {h} x {w} map '
            f'(N must equal H * W)'
        )
    return h, w


def pad_map_to(x: torch.Tensor, hw_pad: Tuple[int, int]) -> torch.Tensor:
    """Zero-pad a channels-last ``(B, H, W, C)`` map at the bottom and right to ``hw_pad``.

    Eager mode returns ``x`` itself when nothing needs padding (``F.pad`` would copy the whole
    map). A compiled graph always pads, zero widths included: a branch on the size would be a
    guard, and a recompile for every size that is, or is not, a multiple of the window.
    """
    h, w = x.shape[1], x.shape[2]
    hp, wp = hw_pad
    if torch.compiler.is_compiling() or hp != h or wp != w:
        x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    return x
