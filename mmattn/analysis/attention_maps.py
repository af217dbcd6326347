"""Where a query point looks, per attention op: the ops' own weights, drawn.

The backbone runs once. Every registered attention op's input is recorded (a forward
pre-hook), and every op built on :class:`~mmattn.models.attentions.BaseAttention` records the
weights it computes in that very call (``attention_sink``: the op then takes its plain-math
path and keeps its softmax / kernel weights). For a query token, the op's
:func:`~mmattn.analysis.query_maps.query_maps` turns its weights into maps: agent
attention's composite query -> agents -> keys map with the agents, BRA's token weights inside
the routed regions with their boxes, FLatten's focused-kernel weights, one map per Shunted head
group, EA's slot responses, the window or global softmax of the others. Nothing here knows
an op's math. An op that records nothing (a new one, or any registered module) gets the
input-gradient saliency ``|d out_q / d x_j|`` instead.

Every map is returned on the grid it lives on, as a ``(h, w)`` array, head-averaged.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mmattn.models.attentions.base import AttentionWeights, BaseAttention

from .query_maps import OpMap, query_maps

__all__ = [
    'OpMap',
    'Record',
    'record_attention_calls',
    'saliency_maps',
    'op_maps',
    'select_records',
    'draw',
]


@dataclass
class Record:
    """An attention op's call inside the backbone: its input and the weights it recorded."""

    name: str
    op: nn.Module
    x: torch.Tensor
    hw: Tuple[int, int]
    weights: List[AttentionWeights] = field(default_factory=list)


def record_attention_calls(
    model: nn.Module, run: Callable[[], object], op_types: Optional[Sequence[type]] = None
) -> List[Record]:
    """Run ``run()`` and return every attention op call in ``model`` with its weights."""
    from .ops import attention_ops

    op_types = tuple(op_types or attention_ops().values())
    records: List[Record] = []
    handles = []

    def make_hook(name):

        def hook(module, args, kwargs):
            x = args[0] if args else kwargs.get('x')
            hw = args[1] if len(args) > 1 else kwargs.get('hw_shape')
            if hw is None and x is not None and x.dim() == 4:  # NCHW op
                hw = tuple(x.shape[-2:])
            rec = Record(name, module, x.detach(), tuple(int(v) for v in hw))
            records.append(rec)
            if isinstance(module, BaseAttention):
                module.attention_sink = rec.weights  # the op appends what it computes

        return hook

    ops = [m for _, m in model.named_modules() if isinstance(m, op_types)]
    for name, module in model.named_modules():
        if isinstance(module, op_types):
            handles.append(module.register_forward_pre_hook(make_hook(name), with_kwargs=True))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
        for op in ops:
            if isinstance(op, BaseAttention):
                op.attention_sink = None
    return records


def _grid(t: torch.Tensor, hw: Sequence[int]) -> np.ndarray:
    return t.detach().float().reshape(int(hw[0]), int(hw[1])).cpu().numpy()


def _query_index(hw: Sequence[int], point_rc: Tuple[float, float]) -> Tuple[int, int]:
    """Token (row, col) of a query given as fractions (y, x) in [0, 1) of the map."""
    r = min(int(point_rc[0] * hw[0]), hw[0] - 1)
    c = min(int(point_rc[1] * hw[1]), hw[1] - 1)
    return r, c


def saliency_maps(op: nn.Module, x: torch.Tensor, hw, q: Tuple[int, int]) -> List[OpMap]:
    """``|d out_q / d x_j|``: how strongly each input token moves the query's output.

    The fallback for an op that does not record its weights (any registered module).
    """
    tokens = x[:1].clone().float().requires_grad_(True)
    with torch.enable_grad():
        if tokens.dim() == 4:  # NCHW op
            out = op(tokens)[0, :, q[0], q[1]]
            (grad,) = torch.autograd.grad(out.square().sum(), tokens)
            sal = grad[0].norm(dim=0)
        else:
            out = op(tokens, hw)[0, q[0] * hw[1] + q[1]]
            (grad,) = torch.autograd.grad(out.square().sum(), tokens)
            sal = grad[0].norm(dim=-1)
    sal = sal / sal.sum().clamp_min(1e-12)
    return [OpMap('input-gradient saliency', _grid(sal, hw))]


def op_maps(record: Record, point_frac: Tuple[float, float]) -> List[OpMap]:
    """Maps of one recorded op call for a query at fractional (y, x) of the image: the op's
    maps (:func:`~mmattn.analysis.query_maps.query_maps`) of the weights it recorded,
    or the saliency fallback."""
    q = _query_index(record.hw, point_frac)
    if record.weights:
        with torch.no_grad():
            return query_maps(record.op, record.weights, q)
    return saliency_maps(record.op, record.x, record.hw, q)


def select_records(records: List[Record], every_block: bool = False) -> List[Record]:
    """Default: the last call at each (op type, resolution), i.e. one per stage."""
    if every_block:
        return records
    last: Dict[Tuple[str, Tuple[int, int]], Record] = {}
    for r in records:
        last[(type(r.op).__name__, r.hw)] = r
    return list(last.values())


def draw(
    image: np.ndarray,
    point_xy: Tuple[float, float],
    rows: List[Tuple[str, List[OpMap]]],
    path: str,
    alpha: float = 0.6,
) -> None:
    """Overlay every map on the RGB ``image`` (H, W, 3) and save one PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    ih, iw = image.shape[:2]
    ncol = max(len(m) for _, m in rows) + 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.2 * ncol, 3.0 * len(rows)), squeeze=False)
    for (label, maps), ax_row in zip(rows, axes):
        ax_row[0].imshow(image)
        ax_row[0].plot(*point_xy, marker='*', color='red', markersize=12)
        ax_row[0].set_title(label, fontsize=7)
        for ax, m in zip(ax_row[1:], maps):
            gh, gw = m.map.shape
            ax.imshow(image)
            ax.imshow(
                m.map, cmap='jet', alpha=alpha, extent=(0, iw, ih, 0), interpolation='nearest'
            )
            sy, sx = ih / gh, iw / gw
            if m.points:
                wmax = max(p[2] for p in m.points) or 1.0
                for r, c, wt in m.points:
                    ax.scatter(
                        (c + 0.5) * sx,
                        (r + 0.5) * sy,
                        s=10 + 120 * wt / wmax,
                        facecolors='none',
                        edgecolors='white',
                        linewidths=1,
                    )
            for r0, c0, r1, c1 in m.boxes:
                ax.add_patch(
                    patches.Rectangle(
                        ((c0 + 0.5) * sx, (r0 + 0.5) * sy),
                        (c1 - c0) * sx,
                        (r1 - r0) * sy,
                        fill=False,
                        edgecolor='white',
                        linewidth=1.2,
                    )
                )
            ax.plot(*point_xy, marker='*', color='red', markersize=9)
            ax.set_title(m.title, fontsize=7)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(0, iw)
            ax.set_ylim(ih, 0)
        for ax in ax_row[1 + len(maps) :]:
            ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
