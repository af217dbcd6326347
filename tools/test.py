"""Evaluate a checkpoint: COCO bbox/segm mAP for mmdet configs, mIoU for mmseg configs.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show-dir DIR]
                         [--tta] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

``--out`` writes the raw predictions (a pickle) atomically: the file is complete or absent.
``--tta`` evaluates with the recipe's test-time augmentation (``mmattn/utils/tta.py``).
"""

import argparse
import json
import numbers
import os
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmattn.utils.checkpoint import write_json_atomic  # noqa: E402
from mmattn.utils.cli import (  # noqa: E402
    UserInputError,
    finish_launcher,
    load_run_config,
    parse_run_args,
    user_errors,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out', help='write the raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='draw predictions into this folder')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_pipeline (segmentation: "
        "the papers' multi-scale + flip) merged by its tta_model",
    )
    return parse_run_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from mmattn.engine.hooks import enable_crash_safe_checkpoints
    from mmattn.engine.run import build_runner

    cfg = load_run_config(args, checkpoint=args.checkpoint)

    scope = cfg.get('default_scope', 'mmdet')
    if args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise UserInputError('--show-dir needs a visualization hook in default_hooks')
        hook['draw'] = True
        if scope == 'mmdet':
            hook['test_out_dir'] = osp.abspath(args.show_dir)
        else:
            cfg.visualizer['save_dir'] = osp.abspath(args.show_dir)
            cfg.visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])

    tmp_out = None
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise UserInputError(
                f'--out {args.out}: the predictions are written as a pickle; '
                f'use a file name ending in .pkl'
            )
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        # DumpResults insists on a .pkl name, so the temporary name ends in .pkl too.
        tmp_out = osp.join(out_dir, f'.{osp.basename(args.out)}.{os.getpid()}.part.pkl')
        dump = dict(
            type='DumpDetResults' if scope == 'mmdet' else 'DumpResults', out_file_path=tmp_out
        )
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = (
            list(evaluator) + [dump] if isinstance(evaluator, (list, tuple)) else [evaluator, dump]
        )

    enable_crash_safe_checkpoints(cfg, strict_load=True)  # refuses another model's checkpoint

    def tta(cfg):  # after the pre-flight checks, which read the plain model config
        from mmattn.utils.tta import apply_tta

        print(f'note: --tta: {apply_tta(cfg, args.config)}', file=sys.stderr)

    runner = build_runner(cfg, ('test',), args.compile, before_build=tta if args.tta else None)
    try:
        metrics = runner.test()
        if runner.rank == 0:
            # Machine-readable summary beside the logs (what the demo and the tests read).
            write_json_atomic(
                {
                    k: float(v) if isinstance(v, (numbers.Real, np.number)) else str(v)
                    for k, v in (metrics or {}).items()
                },
                osp.join(cfg.work_dir, 'metrics.json'),
            )
            print('metrics: ' + json.dumps(metrics, default=str))
        if tmp_out is not None and osp.exists(tmp_out):
            os.replace(tmp_out, args.out)  # atomic: the result file is complete or absent
        finish_launcher(runner)
    finally:
        if tmp_out is not None and osp.exists(tmp_out):
            os.remove(tmp_out)


if __name__ == '__main__':
    with user_errors():
        main()
