"""Scaling study: time and peak memory of every attention op as the token map grows.

    python tools/analysis_tools/attention_scaling.py [--ops A B ...] [--sides 16 32 64 128]
        [--embed-dims 64] [--num-heads 2] [--repeat 3] [--warmup 1] [--no-backward]
        [--no-memory] [--threads N] [--out-dir docs/scaling] [--from-csv CSV]

Runs every registered attention op (settings of its backbone's first stage, see
``mmattn/analysis/ops.py``) and a plain softmax baseline at the same width and heads on
side x side maps, forward and forward+backward, and writes ``attention_scaling.csv`` and a
log-log ``attention_scaling.png`` whose legends give each op's fitted growth exponent in the
number of tokens. ``--from-csv`` only redraws the plot.
"""

import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Attention cost against map size')
    parser.add_argument(
        '--ops', nargs='+', help='op names (default: baseline + all registered ops)'
    )
    parser.add_argument(
        '--sides',
        type=int,
        nargs='+',
        default=[16, 32, 64, 128],
        help='map sides (tokens = side^2)',
    )
    parser.add_argument('--embed-dims', type=int, default=64)
    parser.add_argument('--num-heads', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--no-backward', action='store_true')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument(
        '--clock',
        choices=['wall', 'process'],
        default='wall',
        help='wall time, or the CPU time of this process (robust on a shared '
        'CPU; use with --threads 1)',
    )
    parser.add_argument(
        '--baseline-max-side',
        type=int,
        default=64,
        help='largest side for the math-path softmax baseline, whose N x N '
        'matrices grow fastest (default 64)',
    )
    parser.add_argument('--out-dir', default='work_dirs/attention_scaling')
    parser.add_argument('--name', default='attention_scaling', help='file stem of CSV/PNG')
    parser.add_argument('--from-csv', help='redraw the plot from this CSV, measure nothing')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmattn.analysis import scaling
    from mmattn.analysis.ops import BASELINE, attention_ops

    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = osp.join(args.out_dir, f'{args.name}.csv')
    png_path = osp.join(args.out_dir, f'{args.name}.png')
    if args.from_csv:
        rows = scaling.read_csv(args.from_csv)
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        known = [BASELINE, BASELINE + '-SDPA', *attention_ops()]
        for name in args.ops or []:
            if name not in known:
                raise SystemExit(f'error: unknown op {name!r}; choose from {", ".join(known)}')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            rows = scaling.run_scaling(
                args.ops,
                args.sides,
                embed_dims=args.embed_dims,
                num_heads=args.num_heads,
                batch_size=args.batch_size,
                repeat=args.repeat,
                warmup=args.warmup,
                backward=not args.no_backward,
                memory=not args.no_memory,
                max_side={BASELINE: args.baseline_max_side},
                clock=args.clock,
            )
        scaling.write_csv(rows, csv_path)
        print(f'wrote {csv_path}')
    title = (
        (
            f'C={int(rows[0]["embed_dims"])}, heads={int(rows[0]["num_heads"])}, '
            f'{torch.get_num_threads()} CPU thread(s)'
        )
        if rows
        else ''
    )
    if not args.from_csv and args.clock == 'process':
        title += ', times: process CPU time'

    scaling.plot(rows, png_path, title)
    print(f'wrote {png_path}')
    for metric in ('flops', 'fwd_ms', 'fwd_peak_mib'):
        fits = scaling.exponents(rows, metric)
        print(f'{metric:>14} exponent: ' + ', '.join(f'{k} {v:.2f}' for k, v in fits.items()))
    failed = [f'{r["op"]}@{int(r["side"])}: {r["error"]}' for r in rows if r.get('error')]
    if failed:
        print('failed runs: ' + '; '.join(failed))


if __name__ == '__main__':
    main()
