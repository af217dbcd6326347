"""Params and FLOPs (multiply-adds) of a config's detector/segmentor or of its backbone.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--backbone-only]
                                             [--by-module] [--json OUT] [--cfg-options k=v]

Counts with MMEngine's jit counter plus mmattn's handles for the attention products it misses
(``scaled_dot_product_attention``, broadcast ``matmul``, ``einsum``, ``baddbmm``); see
``mmattn/analysis/flops.py``. Input defaults follow the papers: H x W = 800 x 1280 for COCO
detectors, 512 x 2048 for ADE20K segmentors. Detectors are counted in tensor mode (backbone,
neck, RPN, box head on the proposals, mask head on the first 100), as MMDet's get_flops does.
"""

import argparse
import json
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.utils.cli import load_config, user_errors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Params and FLOPs of a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        metavar='S',
        help='input H W (or one value for a square); defaults to 800 1280 for '
        'detectors and 512 2048 for segmentors',
    )
    parser.add_argument('--backbone-only', action='store_true', help='count model.backbone alone')
    parser.add_argument(
        '--by-module', action='store_true', help='also print FLOPs of the top-level sub-modules'
    )
    parser.add_argument('--json', help='also write the result as JSON to this file')
    parser.add_argument(
        '--cfg-options', nargs='+', default=None, help='override config keys (key=value)'
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import DictAction

    from mmattn.analysis.flops import config_complexity, format_count

    options = None
    if args.cfg_options:
        ns = argparse.Namespace()
        DictAction(option_strings=[], dest='o')(None, ns, args.cfg_options)
        options = ns.o
    if args.shape and len(args.shape) not in (1, 2):
        raise SystemExit('error: --shape takes H W or a single side')
    shape = None
    if args.shape:
        shape = (args.shape[0], args.shape[-1])
    cfg = load_config(args.config, options)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = config_complexity(cfg, shape, args.backbone_only, by_module=args.by_module)
    what = (
        'backbone' if args.backbone_only else {'det': 'detector', 'seg': 'segmentor'}[res['task']]
    )
    h, w = res['shape']
    line = '=' * 40
    print(line)
    print(f'Config:  {args.config}')
    print(f'Model:   {what}, input 1x3x{h}x{w}')
    print(f'Params:  {format_count(res["params"])} ({res["params"]})')
    print(f'FLOPs:   {format_count(res["flops"])} ({res["flops"]} multiply-adds)')
    print(
        'By operator: '
        + ', '.join(
            f'{k} {format_count(v)}'
            for k, v in sorted(res['by_operator'].items(), key=lambda kv: -kv[1])
        )
    )
    if args.by_module:
        top = {k: v for k, v in res['by_module'].items() if k and '.' not in k}
        print('By module:   ' + ', '.join(f'{k} {format_count(v)}' for k, v in top.items()))
    if res['uncounted_products']:
        print(f'WARNING: uncounted ops with multiply-adds: {res["uncounted_products"]}')
    print(line)
    if args.json:
        out = {k: v for k, v in res.items()}
        out['config'] = args.config
        out['backbone_only'] = args.backbone_only
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    with user_errors():
        main()
