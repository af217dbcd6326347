"""Inference throughput (images/s) and peak memory of a config's model or backbone.

    python tools/analysis_tools/benchmark.py CONFIG [--shape H W] [--repeat 10] [--warmup 2]
        [--batch-size 1] [--backbone-only] [--mode predict|tensor] [--device cpu|cuda]
        [--checkpoint CKPT] [--json OUT] [--no-memory]

Random images of the given shape (defaults: 800x1280 for detectors, 512x2048 for segmentors,
as in get_flops); the weights do not change the cost except for the number of detections a
detector post-processes, so pass ``--checkpoint`` for a trained detector's numbers. Reports
the median time and the spread over the timed runs, and the peak memory of one run.
"""
import argparse
import json
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.utils.cli import load_config, user_errors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark inference speed and memory')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs='+', metavar='S',
                        help='input H W (or one value); defaults as in get_flops.py')
    parser.add_argument('--repeat', type=int, default=10, help='timed runs (default 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first (default 2)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument('--mode', choices=['predict', 'tensor'], default='predict',
                        help='predict: full inference with post-processing; tensor: network '
                        'outputs only')
    parser.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--checkpoint', help='load these weights (optional)')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory run')
    parser.add_argument('--json', help='also write the result as JSON to this file')
    return parser.parse_args(argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmattn.analysis.benchmark import benchmark_callable, model_runner
    from mmattn.analysis.flops import DEFAULT_SHAPES, build_model_from_cfg, task_of
    if args.repeat < 1 or args.warmup < 0 or args.batch_size < 1:
        raise SystemExit('error: --repeat and --batch-size must be >= 1, --warmup >= 0')
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    task = task_of(cfg)
    shape = (args.shape[0], args.shape[-1]) if args.shape else DEFAULT_SHAPES[task]
    device = torch.device(args.device)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = build_model_from_cfg(cfg, args.backbone_only)
        if args.checkpoint:
            from mmengine.runner import load_checkpoint
            load_checkpoint(model, args.checkpoint, map_location='cpu')
        run = model_runner(model, task, shape, args.batch_size, args.backbone_only, args.mode,
                           device)
        res = benchmark_callable(run, args.batch_size, args.repeat, args.warmup, device,
                                 measure_memory=not args.no_memory)
    t = res['time']
    what = 'backbone' if args.backbone_only else f'{task} model ({args.mode})'
    print('=' * 40)
    print(f'Config:     {args.config}')
    print(f'Model:      {what}, input {args.batch_size}x3x{shape[0]}x{shape[1]}, '
          f'device {device}, {torch.get_num_threads()} CPU threads')
    print(f'Time/batch: median {t["median"] * 1e3:.1f} ms (IQR {t["q1"] * 1e3:.1f}-'
          f'{t["q3"] * 1e3:.1f}, min {t["min"] * 1e3:.1f}, max {t["max"] * 1e3:.1f}) '
          f'over {t["runs"]} runs after {args.warmup} warm-up')
    print(f'Throughput: {res["fps_median"]:.2f} img/s (range {res["fps_min"]:.2f}-'
          f'{res["fps_max"]:.2f})')
    if res['peak_mem_bytes'] is not None:
        print(f'Peak mem:   {res["peak_mem_bytes"] / 2**20:.1f} MiB during one batch '
              f'({"max_memory_allocated" if device.type == "cuda" else "profiler"})')
    print('=' * 40)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(dict(res, config=args.config, shape=list(shape), device=str(device),
                           backbone_only=args.backbone_only, mode=args.mode), f, indent=2)


if __name__ == '__main__':
    with user_errors():
        main()
