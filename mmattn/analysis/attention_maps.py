"""Where a query point looks, per attention op.

The backbone runs once with forward pre-hooks on its attention ops, which record each op's
input tokens and ``hw_shape``. For a query token each recorded op is then re-evaluated by an
extractor that knows its math (reading the op's own layers and parameters, so trained weights
give the trained maps):

- ``AgentAttention``: the composite map ``softmax(q A^T + B2) softmax(A K^T + B1)`` (query ->
  agents -> keys) and the agents' positions (centres of their pooling cells), sized by the
  query's weight on each agent;
- ``BiLevelRoutingAttention``: the ``topk`` routed regions of the query's region (boxes) and
  the token-level softmax inside them;
- ``FocusedLinearAttention``: the normalised focused-kernel weights
  ``phi(q) . phi(k_j) / sum_j phi(q) . phi(k_j)``;
- ``ShuntedSelfAttention``: one map per head group, each on its own key grid (granularity);
- ``MultiHeadExternalAttention`` / ``ExternalAttention``: the response map of the query's
  strongest memory slots and the composite ``sum_s A[q, s] A[:, s]``;
- plain softmax ops (``SpatialReductionAttention``, ``GlobalAttentionLePE``,
  ``ShiftWindowMSA``) and any other op: the input-gradient saliency
  ``|d out_q / d x_j|`` (channel L2 norm), which needs no knowledge of the op.

Every map is returned on the grid it lives on, as a ``(h, w)`` array normalised to sum 1 where
it is a distribution, with the head-average taken.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class OpMap:
    """One panel: a map over the grid ``map.shape`` plus optional overlays.

    Attributes:
        title (str): Panel title.
        map (np.ndarray): ``(h, w)`` weights; the grid covers the whole image.
        points (list): ``(row, col, weight)`` markers in grid coordinates (cell centres).
        boxes (list): ``(row0, col0, row1, col1)`` rectangles in grid coordinates.
    """
    title: str
    map: np.ndarray
    points: List[Tuple[float, float, float]] = field(default_factory=list)
    boxes: List[Tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class Record:
    """An attention op's call inside the backbone."""
    name: str
    op: nn.Module
    x: torch.Tensor
    hw: Tuple[int, int]


def record_attention_calls(model: nn.Module, run: Callable[[], object],
                           op_types: Optional[Sequence[type]] = None) -> List[Record]:
    """Run ``run()`` and return the inputs of every attention op called in ``model``."""
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
            records.append(Record(name, module, x.detach(), tuple(int(v) for v in hw)))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, op_types):
            handles.append(module.register_forward_pre_hook(make_hook(name), with_kwargs=True))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return records


def _grid(t: torch.Tensor, hw: Sequence[int]) -> np.ndarray:
    return t.detach().float().reshape(int(hw[0]), int(hw[1])).cpu().numpy()


def _query_index(hw: Sequence[int], point_rc: Tuple[float, float]) -> Tuple[int, int]:
    """Token (row, col) of a query given as fractions (y, x) in [0, 1) of the map."""
    r = min(int(point_rc[0] * hw[0]), hw[0] - 1)
    c = min(int(point_rc[1] * hw[1]), hw[1] - 1)
    return r, c


# ---------------------------------------------------------------------- extractors
def saliency_maps(op: nn.Module, x: torch.Tensor, hw, q: Tuple[int, int]) -> List[OpMap]:
    """``|d out_q / d x_j|``: how strongly each input token moves the query's output."""
    tokens = x[:1].clone().float().requires_grad_(True)
    with torch.enable_grad():
        if tokens.dim() == 4:  # NCHW op
            out = op(tokens)[0, :, q[0], q[1]]
            grad, = torch.autograd.grad(out.square().sum(), tokens)
            sal = grad[0].norm(dim=0)
        else:
            out = op(tokens, hw)[0, q[0] * hw[1] + q[1]]
            grad, = torch.autograd.grad(out.square().sum(), tokens)
            sal = grad[0].norm(dim=-1)
    sal = sal / sal.sum().clamp_min(1e-12)
    return [OpMap('input-gradient saliency', _grid(sal, hw))]


def agent_maps(op, x, hw, q) -> List[OpMap]:
    """Composite query -> agents -> keys map and the agent positions."""
    b, n, c = x[:1].shape
    h, w = hw
    heads, d = op.num_heads, op.head_dims
    qi = q[0] * w + q[1]
    qs, ks, _ = op.qkv(x[:1]).reshape(1, n, 3, c).unbind(2)
    agents = F.adaptive_avg_pool2d(qs.transpose(1, 2).reshape(1, c, h, w), op.agent_shape)
    agents = agents.reshape(1, heads, d, -1).transpose(-2, -1)  # (1, heads, A, d)
    qs = qs.reshape(1, n, heads, d).transpose(1, 2)
    ks = ks.reshape(1, n, heads, d).transpose(1, 2)
    pos_bias = agent_bias = 0.
    if op.with_bias:
        pos_bias, agent_bias = op.agent_biases((h, w))
    agg = ((agents * op.scale) @ ks.transpose(-2, -1) + pos_bias).softmax(-1)  # (1, heads, A, N)
    bcast = ((qs * op.scale) @ agents.transpose(-2, -1) + agent_bias).softmax(-1)  # (.., N, A)
    q_to_agents = bcast[0, :, qi]  # (heads, A)
    composite = (q_to_agents.unsqueeze(1) @ agg[0]).squeeze(1).mean(0)  # (N,)
    gh, gw = op.agent_shape
    weights = q_to_agents.mean(0)
    points = []
    for a in range(gh * gw):
        i, j = divmod(a, gw)
        # centre of adaptive pooling cell (i, j) in token coordinates
        r0, r1 = math.floor(i * h / gh), math.ceil((i + 1) * h / gh)
        c0, c1 = math.floor(j * w / gw), math.ceil((j + 1) * w / gw)
        points.append(((r0 + r1) / 2 - .5, (c0 + c1) / 2 - .5, float(weights[a])))
    return [OpMap('agent composite (q->agents->keys)', _grid(composite, hw), points=points)]


def bra_maps(op, x, hw, q) -> List[OpMap]:
    """Routed regions of the query's region and the token attention inside them."""
    from mmattn.models.attentions.bi_level_routing_attention import _to_regions
    b, n, c = x[:1].shape
    h, w = hw
    s = op.n_win
    rh, rw = math.ceil(h / s), math.ceil(w / s)
    hp, wp = rh * s, rw * s
    xm = F.pad(x[:1].view(1, h, w, c), (0, 0, 0, wp - w, 0, hp - h))
    qs, ks, _ = op.qkv(xm).split([op.qk_dims, op.qk_dims, c], dim=-1)
    q_r, k_r = (_to_regions(t, s, rh, rw) for t in (qs, ks))  # (1, P, w2, *)
    _, r_idx = op.route(q_r, k_r)
    region = (q[0] // rh) * s + q[1] // rw
    routed = r_idx[0, region].tolist()
    m = op.num_heads
    qv = qs[0, q[0], q[1]].view(m, -1) * op.scale  # (heads, d)
    keys = k_r[0, routed].reshape(len(routed) * rh * rw, m, -1)  # (topk*w2, heads, d)
    attn = torch.einsum('hd,khd->hk', qv, keys).softmax(-1).mean(0)  # (topk*w2,)
    full = torch.zeros(s * s, rh * rw)
    full[routed] = attn.view(len(routed), rh * rw)
    # region-major (P, rh*rw) -> (hp, wp)
    full = full.view(s, s, rh, rw).permute(0, 2, 1, 3).reshape(hp, wp)[:h, :w]
    boxes = [((p // s) * rh - .5, (p % s) * rw - .5, (p // s + 1) * rh - .5,
              (p % s + 1) * rw - .5) for p in routed]
    return [OpMap(f'BRA: top-{len(routed)} routed regions', full.numpy(), boxes=boxes)]


def flatten_maps(op, x, hw, q) -> List[OpMap]:
    """Normalised focused-kernel weights of the query over the keys."""
    from mmattn.models.attentions.focused_linear_attention import (
        focused_kernel,
        resize_pos_encoding,
    )
    b, n, c = x[:1].shape
    h, w = hw
    heads, d = op.num_heads, op.head_dims
    qs = op.q(x[:1]).float()
    if op.sr_ratio > 1:
        x_ = op.sr(x[:1].transpose(1, 2).reshape(1, c, h, w))
        kv_hw = tuple(x_.shape[-2:])
        x_ = op.norm(x_.flatten(2).transpose(1, 2))
    else:
        x_, kv_hw = x[:1], (h, w)
    ks, _ = op.kv(x_).float().chunk(2, dim=-1)
    if op.positional_encoding is not None:
        ks = ks + resize_pos_encoding(op.positional_encoding.float(), op.pos_hw, kv_hw,
                                      op.pos_interp_mode)
    scale = F.softplus(op.scale.float())
    qf = focused_kernel(qs, scale, op.focusing_factor)[0, q[0] * w + q[1]].view(heads, d)
    kf = focused_kernel(ks, scale, op.focusing_factor)[0].view(-1, heads, d)
    weights = torch.einsum('hd,nhd->hn', qf, kf)
    weights = (weights / weights.sum(-1, keepdim=True)).mean(0)
    return [OpMap('FLatten focused-kernel weights', _grid(weights, kv_hw))]


def shunted_maps(op, x, hw, q) -> List[OpMap]:
    """One softmax map per head group, each on its own key grid."""
    b, n, c = x[:1].shape
    h, w = hw
    qi = q[0] * w + q[1]
    qs = op._split_heads(op.q(x[:1]), op.num_heads)[0, :, qi]  # (heads, d)
    if op.sr_ratio == 1:
        k, _ = op.kv(x[:1]).chunk(2, dim=-1)
        k = op._split_heads(k, op.num_heads)[0]  # (heads, N, d)
        attn = ((qs.unsqueeze(1) @ k.transpose(-2, -1)).squeeze(1) * op.scale).softmax(-1)
        return [OpMap('SSA (rate 1, all heads)', _grid(attn.mean(0), hw))]
    x_map = x[:1].transpose(1, 2).reshape(1, c, h, w)
    g_heads = op.num_heads // 2
    maps = []
    branches = ((op.sr1, op.norm1, op.kv1), (op.sr2, op.norm2, op.kv2))
    for g, ((sr, norm, kv), rate) in enumerate(zip(branches, op.group_rates)):
        red = sr(x_map)
        red_hw = tuple(red.shape[2:])
        tokens = op.act(norm(red.flatten(2).transpose(1, 2)))
        k, _ = kv(tokens).chunk(2, dim=-1)
        k = op._split_heads(k, g_heads)[0]  # (g_heads, n_g, d)
        qg = qs[g * g_heads:(g + 1) * g_heads]
        attn = ((qg.unsqueeze(1) @ k.transpose(-2, -1)).squeeze(1) * op.scale).softmax(-1)
        maps.append(OpMap(f'Shunted group {g + 1} (rate {rate}, {red_hw[0]}x{red_hw[1]} keys)',
                          _grid(attn.mean(0), red_hw)))
    return maps


def _slot_maps(attn: torch.Tensor, hw, qi: int, top: int = 2) -> List[OpMap]:
    """``attn`` (heads, N, S), double-normalised; the query's strongest slots' responses."""
    q_slots = attn[:, qi]  # (heads, S)
    composite = torch.einsum('hs,hns->n', q_slots, attn) / attn.shape[0]
    composite = composite / composite.sum().clamp_min(1e-12)
    maps = [OpMap('EA composite sum_s A[q,s] A[:,s]', _grid(composite, hw))]
    slot_w = q_slots.mean(0)
    for s in slot_w.topk(min(top, slot_w.numel())).indices.tolist():
        resp = attn[:, :, s].mean(0)
        maps.append(OpMap(f'EA slot {s} response (weight {float(slot_w[s]):.2f})',
                          _grid(resp / resp.sum().clamp_min(1e-12), hw)))
    return maps


def eamlp_maps(op, x, hw, q) -> List[OpMap]:
    from mmattn.models.attentions.external_attention import double_normalise
    b, n, _ = x[:1].shape
    t = op.trans_dims(x[:1]).view(1, n, op.num_heads, op.head_dims).transpose(1, 2)
    attn = double_normalise(op.mem_k(t), token_dim=2, slot_dim=3, eps=op.eps)[0]
    return _slot_maps(attn, hw, q[0] * hw[1] + q[1])


def ea_map_maps(op, x, hw, q) -> List[OpMap]:
    from mmattn.models.attentions.external_attention import double_normalise
    t = op.conv_in(x[:1])
    attn = double_normalise(op.mem_k(t.flatten(2)), token_dim=2, slot_dim=1, eps=op.eps)
    return _slot_maps(attn.transpose(1, 2), hw, q[0] * hw[1] + q[1])  # (1, N, S)


EXTRACTORS: Dict[str, Callable] = {
    'AgentAttention': agent_maps,
    'BiLevelRoutingAttention': bra_maps,
    'FocusedLinearAttention': flatten_maps,
    'ShuntedSelfAttention': shunted_maps,
    'MultiHeadExternalAttention': eamlp_maps,
    'ExternalAttention': ea_map_maps,
}


def op_maps(record: Record, point_frac: Tuple[float, float]) -> List[OpMap]:
    """Maps of one recorded op call for a query at fractional (y, x) of the image."""
    q = _query_index(record.hw, point_frac)
    fn = EXTRACTORS.get(type(record.op).__name__)
    if fn is None:
        for cls in type(record.op).__mro__[1:]:
            fn = EXTRACTORS.get(cls.__name__)
            if fn is not None:
                break
    with torch.no_grad():
        return fn(record.op, record.x, record.hw, q) if fn else saliency_maps(
            record.op, record.x, record.hw, q)


def select_records(records: List[Record], every_block: bool = False) -> List[Record]:
    """Default: the last call at each (op type, resolution), i.e. one per stage."""
    if every_block:
        return records
    last: Dict[Tuple[str, Tuple[int, int]], Record] = {}
    for r in records:
        last[(type(r.op).__name__, r.hw)] = r
    return list(last.values())


def draw(image: np.ndarray, point_xy: Tuple[float, float], rows: List[Tuple[str, List[OpMap]]],
         path: str, alpha: float = 0.6) -> None:
    """Overlay every map on the RGB ``image`` (H, W, 3) and save one PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    ih, iw = image.shape[:2]
    ncol = max(len(m) for _, m in rows) + 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.2 * ncol, 3.0 * len(rows)),
                             squeeze=False)
    for (label, maps), ax_row in zip(rows, axes):
        ax_row[0].imshow(image)
        ax_row[0].plot(*point_xy, marker='*', color='red', markersize=12)
        ax_row[0].set_title(label, fontsize=7)
        for ax, m in zip(ax_row[1:], maps):
            gh, gw = m.map.shape
            ax.imshow(image)
            ax.imshow(m.map, cmap='jet', alpha=alpha, extent=(0, iw, ih, 0),
                      interpolation='nearest')
            sy, sx = ih / gh, iw / gw
            if m.points:
                wmax = max(p[2] for p in m.points) or 1.
                for r, c, wt in m.points:
                    ax.scatter((c + .5) * sx, (r + .5) * sy, s=10 + 120 * wt / wmax,
                               facecolors='none', edgecolors='white', linewidths=1)
            for r0, c0, r1, c1 in m.boxes:
                ax.add_patch(patches.Rectangle(((c0 + .5) * sx, (r0 + .5) * sy),
                                               (c1 - c0) * sx, (r1 - r0) * sy, fill=False,
                                               edgecolor='white', linewidth=1.2))
            ax.plot(*point_xy, marker='*', color='red', markersize=9)
            ax.set_title(m.title, fontsize=7)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(0, iw)
            ax.set_ylim(ih, 0)
        for ax in ax_row[1 + len(maps):]:
            ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
