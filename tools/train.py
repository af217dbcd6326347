"""Train a detector or segmentor from an mmattn config.

One script for both tasks: the config's ``default_scope`` (``mmdet`` or ``mmseg``) decides
which registries build the model, datasets and metrics.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--nan-policy stop|skip] [--cfg-options k=v ...]
                          [--launcher none|pytorch|slurm]

Exit status: 0 done; 2 a mistake in the input (one ``error:`` line, nothing trained); 3 a
non-finite loss; 4 a file could not be written (disk full); 128 + N preempted by signal N
(143 SIGTERM, 130 SIGINT) after saving a checkpoint: rerun with ``--resume``.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmattn.utils.cli import (  # noqa: E402
    finish_launcher,
    load_run_config,
    parse_run_args,
    user_errors,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or (no value) from the newest checkpoint in the work dir',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: fp16 with loss scaling on CUDA, bf16 on CPU',
    )
    parser.add_argument(
        '--nan-policy',
        choices=['stop', 'skip'],
        help='on a non-finite loss: stop (default; exit 3) or skip the step (config: nan_policy)',
    )
    parser.add_argument(
        '--nan-max-skips',
        type=int,
        help='with --nan-policy skip: stop after this many skipped steps '
        '(default 10; config: nan_max_skips)',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size',
    )
    return parse_run_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from mmattn.engine.faults import enable_fault_handling
    from mmattn.engine.hooks import enable_crash_safe_checkpoints, find_resume_checkpoint
    from mmattn.engine.optim_wrapper import fit_optim_wrapper_to_device
    from mmattn.engine.run import build_runner

    cfg = load_run_config(args)

    # fp16 AMP recipes (AmpOptimWrapper) run in fp32 (or bf16 with --amp) where CUDA is absent.
    note = fit_optim_wrapper_to_device(cfg, amp=args.amp)
    if note:
        print(f'note: {note}', file=sys.stderr)

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit(
                'error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config'
            )
        cfg.auto_scale_lr.enable = True

    # Crash-safe saves (atomic files, pointer last); auto-resume takes the newest complete one.
    enable_crash_safe_checkpoints(cfg)
    # SIGTERM/SIGINT save and exit 128+signal; non-finite losses stop or skip; full disks name
    # the file (mmattn/engine/faults.py).
    enable_fault_handling(cfg, args.nan_policy, args.nan_max_skips)
    if args.resume == 'auto':
        cfg.load_from = find_resume_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    # data paths and contents, backbone config, checkpoint file: then the runner
    runner = build_runner(cfg, ('train', 'val'), args.compile)
    runner.train()
    finish_launcher(runner)


if __name__ == '__main__':
    with user_errors():
        main()
