"""How each attention op's time and memory grow with the number of tokens.

Every registered op (see :mod:`mmattn.analysis.ops`) and the plain softmax baseline run at
the same width and heads on square maps of growing side; for each we record FLOPs (the
counter of :mod:`mmattn.analysis.flops`), the median time of the forward and of
forward+backward, and the peak memory of each (see :mod:`mmattn.analysis.benchmark`). The
growth exponent is the least-squares slope of log(cost) against log(tokens): 2 for softmax
attention over all tokens, 1 for linear forms; windowed/routed/reduced ops fall in between
over a finite range because of their linear parts and per-window constants.
"""

import csv
import math
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from .benchmark import peak_memory, time_runs
from .flops import count_flops
from .ops import BASELINE, attention_ops, build_op, fit_exponent, min_side

FIELDS = [
    'op',
    'side',
    'tokens',
    'embed_dims',
    'num_heads',
    'flops',
    'fwd_ms',
    'fwd_ms_min',
    'fwd_peak_mib',
    'fwdbwd_ms',
    'fwdbwd_ms_min',
    'fwdbwd_peak_mib',
    'error',
]


#: The math-path baseline writes out (heads, N, N) matrices: at 128 x 128 tokens that is
#: 2 GiB per matrix in fp32, several of them in backward; it stops here by default.
MAX_SIDE = {BASELINE: 64}


def default_ops() -> List[str]:
    """The two baselines (math path, fused SDPA) followed by every registered op."""
    return [BASELINE, BASELINE + '-SDPA'] + list(attention_ops())


def measure_op(
    name: str,
    side: int,
    embed_dims: int = 64,
    num_heads: int = 2,
    batch_size: int = 1,
    repeat: int = 3,
    warmup: int = 1,
    backward: bool = True,
    memory: bool = True,
    clock: str = 'wall',
) -> Dict[str, object]:
    """One CSV row: cost of op ``name`` on a ``side x side`` map."""
    row: Dict[str, object] = dict(
        op=name, side=side, tokens=side * side, embed_dims=embed_dims, num_heads=num_heads, error=''
    )
    try:
        torch.manual_seed(0)
        op = build_op(name, embed_dims, num_heads)
        hw = (side, side)
        x = torch.randn(batch_size, side * side, embed_dims)
        row['flops'] = count_flops(op, (x, hw)).flops

        @torch.no_grad()
        def fwd():
            return op(x, hw)

        times = time_runs(fwd, repeat, warmup, clock=clock)
        row['fwd_ms'], row['fwd_ms_min'] = _median(times) * 1e3, min(times) * 1e3
        if memory:
            row['fwd_peak_mib'] = peak_memory(fwd) / 2**20
        if backward:
            op.train()
            xg = x.clone().requires_grad_(True)

            def fwdbwd():
                op(xg, hw).square().mean().backward()
                op.zero_grad(set_to_none=True)
                xg.grad = None

            times = time_runs(fwdbwd, repeat, warmup, clock=clock)
            row['fwdbwd_ms'], row['fwdbwd_ms_min'] = _median(times) * 1e3, min(times) * 1e3
            if memory:
                row['fwdbwd_peak_mib'] = peak_memory(fwdbwd) / 2**20
    except (RuntimeError, ValueError, MemoryError) as err:  # e.g. out of memory
        row['error'] = f'{type(err).__name__}: {str(err).splitlines()[0][:200]}'
    return row


def _median(xs: Sequence[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def run_scaling(
    ops: Optional[Iterable[str]] = None,
    sides: Sequence[int] = (16, 32, 64, 128),
    progress: bool = True,
    max_side: Optional[Dict[str, int]] = None,
    **kwargs,
) -> List[Dict[str, object]]:
    """Measure every op at every side.

    Sides below an op's reduction rate, or above its ``max_side`` (default :data:`MAX_SIDE`),
    are skipped.
    """
    ops = list(ops) if ops is not None else default_ops()
    max_side = MAX_SIDE if max_side is None else max_side
    jobs = [(o, s) for o in ops for s in sides if min_side(o) <= s <= max_side.get(o, s)]
    rows = []
    from tqdm import tqdm

    bar = tqdm(jobs, desc='attention scaling', unit='run', disable=not progress)
    for name, side in bar:
        bar.set_postfix_str(f'{name} {side}x{side}')
        rows.append(measure_op(name, side, **kwargs))
    return rows


def write_csv(rows: List[Dict[str, object]], path: str) -> None:
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, '')) for k in FIELDS})


def _fmt(v):
    return f'{v:.6g}' if isinstance(v, float) else v


def read_csv(path: str) -> List[Dict[str, object]]:
    with open(path, encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k in FIELDS:
            if k not in ('op', 'error') and row.get(k) not in (None, ''):
                row[k] = float(row[k])
    return rows


def exponents(rows: List[Dict[str, object]], metric: str) -> Dict[str, float]:
    """Fitted growth exponent of ``metric`` against tokens, per op."""
    out = {}
    for op in dict.fromkeys(r['op'] for r in rows):
        pts = [
            (r['tokens'], r[metric])
            for r in rows
            if r['op'] == op and isinstance(r.get(metric), (int, float)) and not r.get('error')
        ]
        if len(pts) >= 2:
            out[op] = fit_exponent([p[0] for p in pts], [p[1] for p in pts])
    return out


PANELS = [
    ('flops', 'FLOPs (multiply-adds)'),
    ('fwd_ms', 'forward time (ms)'),
    ('fwdbwd_ms', 'forward+backward time (ms)'),
    ('fwd_peak_mib', 'forward peak mem (MiB)'),
    ('fwdbwd_peak_mib', 'fwd+bwd peak mem (MiB)'),
]


def plot(rows: List[Dict[str, object]], path: str, title: str = '') -> None:
    """Log-log panels of cost against tokens, fitted exponent per op in each legend."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [
        (m, label) for m, label in PANELS if any(isinstance(r.get(m), (int, float)) for r in rows)
    ]
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.2 * nrow), squeeze=False)
    ops = list(dict.fromkeys(r['op'] for r in rows))
    cmap = plt.get_cmap('tab10')
    for ax, (metric, label) in zip(axes.flat, panels):
        fits = exponents(rows, metric)
        for i, op in enumerate(ops):
            pts = sorted(
                (r['tokens'], r[metric])
                for r in rows
                if r['op'] == op and isinstance(r.get(metric), (int, float)) and r[metric] > 0
            )
            if not pts:
                continue
            style = (
                dict(color='black', linestyle='--') if op == BASELINE else dict(color=cmap(i % 10))
            )
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker='o',
                markersize=3,
                label=f'{op} (n^{fits.get(op, float("nan")):.2f})',
                **style,
            )
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('tokens n = H x W')
        ax.set_title(label)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=6.5, loc='upper left')
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis('off')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
