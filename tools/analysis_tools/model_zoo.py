"""Write the model-zoo tables (docs/model_zoo.md) from the configs and the folder READMEs.

    python tools/analysis_tools/model_zoo.py [--configs configs] [--out docs/model_zoo.md]
        [--cache docs/model_zoo_complexity.json] [--no-compute] [--only REGEX]

Params/FLOPs come from the get_flops logic at the papers' input sizes and are cached per
config (keyed by a hash of its model settings), so re-running only traces new or changed
configs; ``--no-compute`` leaves missing ones as `—`. Paper metrics are parsed from each
``configs/<method>/README.md`` (see ``mmattn/analysis/model_zoo.py`` for the rules).
"""

import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate the model-zoo markdown')
    parser.add_argument('--configs', default='configs', help='configs root')
    parser.add_argument('--out', default='docs/model_zoo.md')
    parser.add_argument(
        '--cache',
        default='docs/model_zoo_complexity.json',
        help='params/FLOPs cache (JSON); "" for none',
    )
    parser.add_argument(
        '--no-compute', action='store_true', help='do not trace configs missing from the cache'
    )
    parser.add_argument('--only', help='compute only configs whose path matches this regex')
    parser.add_argument(
        '--flops-only',
        metavar='REGEX',
        help='trace FLOPs only for matching configs; count just the params of '
        'the others (FLOPs shown as "—")',
    )
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help="count at this input instead of the papers' sizes (quick looks)",
    )
    parser.add_argument(
        '--link-prefix',
        default=None,
        help='prefix of links to configs (default: relative to --out)',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmattn.analysis import model_zoo as mz

    cache = mz.load_cache(args.cache)
    if not mz.discover_configs(args.configs):
        raise SystemExit(f'error: no method folders with configs under {args.configs}')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        items = mz.build_rows(
            args.configs,
            cache,
            compute=not args.no_compute,
            progress=True,
            only=args.only,
            on_update=(lambda c: mz.save_cache(c, args.cache)) if args.cache else None,
            shape=tuple(args.shape) if args.shape else None,
            flops_only=args.flops_only,
        )
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    prefix = args.link_prefix
    if prefix is None:
        prefix = osp.relpath(os.getcwd(), out_dir).replace(os.sep, '/') + '/'
        prefix = '' if prefix == './' else prefix
    text = mz.render(items, prefix)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(text)
    n_cx = sum(1 for i in items if i['complexity'])
    n_paper = sum(1 for i in items if i['paper']['metrics'])
    print(
        f'wrote {args.out}: {len(items)} configs, {n_cx} with params/FLOPs, {n_paper} with '
        f'paper metrics'
    )
    for row in mz.comparison(items):
        flops = '—' if row['flops'] is None else f'{row["flops"]:.1f}G'
        print(
            f'  {row["config"]}: params {row["params"]:.1f}M (paper {row["paper_params"]}), '
            f'FLOPs {flops} (paper {row["paper_flops"]})'
        )


if __name__ == '__main__':
    main()
