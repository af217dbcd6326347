"""``x @ y^T + u @ w^T`` as one matrix product, for attention logits with a low-rank bias.

Some attention biases are products of a small learned factor and a constant basis that depends
only on the sizes (Agent attention's position biases are resized tables:
``bias = P @ M^T`` with ``P`` learned, ``K`` columns, and ``M`` interpolation weights). Then

    ``scale * q @ k^T + P @ M^T == [scale * q | P] @ [k | M]^T``,

so the biased logits are one GEMM with ``K`` more columns and no bias-sized tensor at all: no
bias is written, added, copied into the GEMM's output, or summed over in backward. On a CPU
those bias-sized passes (adds, copies, fills, reductions) took about a fifth of Agent-PVT-S's
training step at 512x512.

Autograd through ``torch.cat`` would also compute the gradient of the constant basis (a GEMM as
large as the useful one, then thrown away) and keep the concatenated operands for backward;
:func:`concat_matmul` keeps only its inputs and computes only the gradients they need.
"""

import torch

__all__ = ['concat_matmul']


def _product(x, y, u, w):
    m, n, width = x.shape[-2], y.shape[-2], x.shape[-1] + u.shape[-1]
    # (compiled: one form for every size, so that no size guard splits the graph)
    if torch.compiler.is_compiling() or (m + n) * width <= m * n:
        return torch.cat([x, u], -1) @ torch.cat([y, w], -1).transpose(-2, -1)
    # concatenated operands larger than the output: accumulate into it instead
    out = x @ y.transpose(-2, -1)
    out.view(-1, m, n).baddbmm_(
        u.reshape(-1, m, u.shape[-1]), w.reshape(-1, n, w.shape[-1]).transpose(1, 2)
    )
    return out


class _ConcatMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, u, w):
        # The inputs are saved, not the concatenations: those are (N, d + K) copies, and
        # keeping them for backward cost Agent-Swin-T's training step 30 % more memory.
        ctx.save_for_backward(x, y, u, w)
        return _product(x, y, u, w)

    @staticmethod
    def backward(ctx, grad):
        x, y, u, w = ctx.saved_tensors
        need_x, need_y, need_u, need_w = ctx.needs_input_grad
        grad_t = grad.transpose(-2, -1)
        return (
            grad @ y if need_x else None,
            grad_t @ x if need_y else None,
            grad @ w if need_u else None,
            grad_t @ u if need_w else None,
        )


def concat_matmul(
    x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """``x @ y^T + u @ w^T`` computed as ``[x | u] @ [y | w]^T``, or, where the concatenated
    operands would be larger than the ``(M, N)`` output (a long token axis against few agents),
    as ``x @ y^T`` with ``u @ w^T`` accumulated into it in place (one more pass over the output
    instead of the copies; docs/benchmark.md has the timings of both forms).

    Args:
        x (Tensor): ``(..., M, d)``.
        y (Tensor): ``(..., N, d)``.
        u (Tensor): ``(..., M, K)``, same leading dims as ``x``.
        w (Tensor): ``(..., N, K)``, same leading dims as ``y``.

    Returns:
        Tensor: ``(..., M, N)``. In backward only the gradients of the inputs that require one
        are computed (a constant ``u`` or ``w`` costs nothing).
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, y, u, w)):
        return _ConcatMatmul.apply(x, y, u, w)
    return _product(x, y, u, w)
