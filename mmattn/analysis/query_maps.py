"""Per-query maps from the weights an op recorded, with each op family's overlays.

An op records what it computed (:class:`~mmattn.models.attentions.AttentionWeights`, with
op-specific facts in ``meta``); this module turns a record into the maps a person looks at.
The default is the head-averaged row of the query on the record's last grid. Op families add
overlays here (agent centres, routed regions, external-attention slot responses), registered
by op class with :func:`register_query_maps`; a subclass uses its base's overlay, and an op
registered nowhere gets the default, so a new op needs nothing here.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch.nn as nn

from mmattn.models.attentions import (
    AgentAttention,
    AttentionWeights,
    BiLevelRoutingAttention,
    CSWinAttention,
    ExternalAttention,
    MultiHeadExternalAttention,
)

__all__ = ['OpMap', 'query_maps', 'register_query_maps']

Query = Tuple[int, int]


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


MapsFn = Callable[[Sequence[AttentionWeights], Query], List[OpMap]]
_OVERLAYS: Dict[type, MapsFn] = {}


def register_query_maps(op_cls: type) -> Callable[[MapsFn], MapsFn]:
    """Decorator: ``fn(records, query) -> [OpMap]`` draws the records of ``op_cls`` ops."""

    def wrap(fn: MapsFn) -> MapsFn:
        _OVERLAYS[op_cls] = fn
        return fn

    return wrap


def query_maps(op: nn.Module, records: Sequence[AttentionWeights], query: Query) -> List[OpMap]:
    """Maps of the query token ``query`` (row, col of the op's map) from ``op``'s records."""
    for cls in type(op).__mro__:
        if cls in _OVERLAYS:
            return _OVERLAYS[cls](records, query)
    return default_query_maps(records, query)


def default_query_maps(records: Sequence[AttentionWeights], query: Query) -> List[OpMap]:
    """Per record: the head-average of the query's row on the last grid, cropped to the image."""
    maps = []
    for rec in records:
        key_hw, valid = rec.end_grid()
        q = query[0] * rec.query_hw[1] + query[1]
        row = rec.row(q).mean(0).reshape(key_hw)[: valid[0], : valid[1]]
        maps.append(OpMap(rec.title, row.float().cpu().numpy()))
    return maps


@register_query_maps(AgentAttention)
def agent_query_maps(records: Sequence[AttentionWeights], query: Query) -> List[OpMap]:
    """The composite map (query -> agents -> keys), with the agents drawn at the centres of
    their pooling cells, sized by the query's weight on each."""
    maps = []
    for rec in records:
        (omap,) = default_query_maps([rec], query)
        h, w = rec.query_hw
        gh, gw = rec.key_hw
        weights = rec.weights[0, :, query[0] * w + query[1]].mean(0)  # (A',)
        for a in range(gh * gw):
            i, j = divmod(a, gw)
            # centre of adaptive pooling cell (i, j) in token coordinates
            r0, r1 = math.floor(i * h / gh), math.ceil((i + 1) * h / gh)
            c0, c1 = math.floor(j * w / gw), math.ceil((j + 1) * w / gw)
            omap.points.append(((r0 + r1) / 2 - 0.5, (c0 + c1) / 2 - 0.5, float(weights[a])))
        maps.append(omap)
    return maps


@register_query_maps(CSWinAttention)
def cswin_query_maps(records: Sequence[AttentionWeights], query: Query) -> List[OpMap]:
    """Per branch, the query's stripe weights cropped to the image: the stripe padding is
    split between both sides, so the image starts at ``meta['offset']``."""
    maps = []
    for rec in records:
        top, left = rec.meta.get('offset', (0, 0))
        h, w = rec.query_hw
        row = rec.row(query[0] * w + query[1]).mean(0).reshape(rec.key_hw)
        maps.append(OpMap(rec.title, row[top : top + h, left : left + w].float().cpu().numpy()))
    return maps


@register_query_maps(BiLevelRoutingAttention)
def bra_query_maps(records: Sequence[AttentionWeights], query: Query) -> List[OpMap]:
    """The query's token weights inside its routed regions, with the regions as boxes."""
    maps = default_query_maps(records, query)
    for rec, omap in zip(records, maps):
        rh, rw = rec.meta['region_hw']
        s = rec.meta['n_win']
        region = (query[0] // rh) * s + query[1] // rw
        for p in rec.meta['r_idx'][0, region].tolist():
            omap.boxes.append(
                (
                    (p // s) * rh - 0.5,
                    (p % s) * rw - 0.5,
                    (p // s + 1) * rh - 0.5,
                    (p % s + 1) * rw - 0.5,
                )
            )
    return maps


def external_query_maps(
    records: Sequence[AttentionWeights], query: Query, top: int = 2
) -> List[OpMap]:
    """The composite ``sum_s A[q, s] A[:, s]`` (normalised), and the responses of the query's
    ``top`` strongest slots."""
    maps = []
    for rec in records:
        h, w = rec.query_hw
        attn = rec.weights[0]  # (heads, N, S)
        q_slots = attn[:, query[0] * w + query[1]]  # (heads, S)
        composite = rec.row(query[0] * w + query[1]).mean(0)
        composite = composite / composite.sum().clamp_min(1e-12)
        maps.append(OpMap(rec.title, composite.reshape(h, w).float().cpu().numpy()))
        slot_w = q_slots.mean(0)
        for s in slot_w.topk(min(top, slot_w.numel())).indices.tolist():
            resp = attn[:, :, s].mean(0)
            resp = resp / resp.sum().clamp_min(1e-12)
            maps.append(
                OpMap(
                    f'EA slot {s} response (weight {float(slot_w[s]):.2f})',
                    resp.reshape(h, w).float().cpu().numpy(),
                )
            )
    return maps


register_query_maps(ExternalAttention)(external_query_maps)
register_query_maps(MultiHeadExternalAttention)(external_query_maps)
