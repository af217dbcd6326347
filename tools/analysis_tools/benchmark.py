"""Throughput (images/s) and peak memory of a config's model or backbone: inference or a training
step, alone or as an alternating A/B comparison (eager vs compiled, or two configs).

    python tools/analysis_tools/benchmark.py CONFIG [--shape H W] [--repeat 10] [--warmup 2]
        [--batch-size 1] [--backbone-only] [--mode predict|tensor|train] [--device cpu|cuda]
        [--compile] [--dynamic] [--fullgraph] [--checkpoint CKPT] [--json OUT] [--no-memory]
    python tools/analysis_tools/benchmark.py CONFIG --compare-compile [--rounds 3] ...
    python tools/analysis_tools/benchmark.py CONFIG --compare-config CONFIG2 [--rounds 3] ...

Random images of the given shape (defaults: 800x1280 for detectors, 512x2048 for segmentors,
as in get_flops); the weights do not change the cost except for the number of detections a
detector post-processes, so pass ``--checkpoint`` for a trained detector's numbers.
``--mode train`` times forward + backward in train mode (losses on random ground truth; the
backbone alone back-propagates the mean of its outputs); the optimizer step is not included.
``--compile`` compiles the backbone (``nn.Module.compile``: same module, same state dict).
A comparison runs side A (CONFIG as given) and side B (the same model compiled, or CONFIG2 with
the same options) in ``--rounds`` alternating rounds of ``--repeat`` runs each, and reports the
speed-up B over A per round and from the best round medians, the memory ratio and, when the
outputs have the same shapes, their largest difference (eager vs compiled: the same weights).
"""

import argparse
import json
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.utils.cli import load_config, user_errors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark speed and memory (inference or training step), or compare two runs'
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        metavar='S',
        help='input H W (or one value); defaults as in get_flops.py',
    )
    parser.add_argument(
        '--repeat',
        type=int,
        default=10,
        help='timed runs (default 10; per side and round when comparing)',
    )
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first (default 2)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument(
        '--mode',
        choices=['predict', 'tensor', 'train'],
        default='predict',
        help='predict: full inference with post-processing; tensor: network '
        'outputs only; train: training step (forward + backward, train mode)',
    )
    parser.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    parser.add_argument('--threads', type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument('--checkpoint', help='load these weights (optional)')
    parser.add_argument(
        '--compile', action='store_true', help='compile the backbone (torch.compile) before timing'
    )
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='compile with dynamic shapes (torch.compile(dynamic=True))',
    )
    parser.add_argument(
        '--fullgraph',
        action='store_true',
        help='compile with fullgraph=True (fail on a graph break)',
    )
    cmp = parser.add_mutually_exclusive_group()
    cmp.add_argument(
        '--compare-compile',
        action='store_true',
        help='compare eager (A) with the compiled backbone (B), alternating',
    )
    cmp.add_argument(
        '--compare-config',
        metavar='CONFIG2',
        help='compare CONFIG (A) with CONFIG2 (B), same options, alternating',
    )
    parser.add_argument(
        '--rounds', type=int, default=3, help='alternating rounds when comparing (default 3)'
    )
    parser.add_argument('--no-memory', action='store_true', help='skip the memory run')
    parser.add_argument('--json', help='also write the result as JSON to this file')
    return parser.parse_args(argv)


def _cuda():
    import torch

    return torch.cuda.is_available()


def _build(config, args, task=None):
    from mmattn.analysis.flops import build_model_from_cfg, task_of

    cfg = load_config(config)
    found = task_of(cfg)
    if task is not None and found != task:
        raise SystemExit(
            f'error: {config} is a {found} config, {args.config} a {task} one: '
            'compare configs of the same task'
        )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = build_model_from_cfg(cfg, args.backbone_only)
        if args.checkpoint:
            from mmengine.runner import load_checkpoint

            load_checkpoint(model, args.checkpoint, map_location='cpu')
    return model, found


def _ms(t):
    return f'{t * 1e3:.1f} ms'


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmattn.analysis.benchmark import (
        benchmark_callable,
        build_runner,
        compare_callables,
        compile_model,
        compiled_copy,
        max_abs_diff,
    )
    from mmattn.analysis.flops import DEFAULT_SHAPES

    if args.repeat < 1 or args.warmup < 0 or args.batch_size < 1 or args.rounds < 1:
        raise SystemExit('error: --repeat, --rounds and --batch-size must be >= 1, --warmup >= 0')
    comparing = args.compare_compile or args.compare_config
    if comparing and args.warmup < 1:
        raise SystemExit('error: a comparison needs --warmup >= 1 (the first call compiles)')
    if args.threads:
        torch.set_num_threads(args.threads)
    model, task = _build(args.config, args)
    shape = (args.shape[0], args.shape[-1]) if args.shape else DEFAULT_SHAPES[task]
    device = torch.device(args.device)
    what = 'backbone' if args.backbone_only else f'{task} model'
    what += ', training step (forward + backward)' if args.mode == 'train' else f' ({args.mode})'
    compile_kw = dict(dynamic=True if args.dynamic else None, fullgraph=args.fullgraph)
    head = [
        f'Model:      {what}, input {args.batch_size}x3x{shape[0]}x{shape[1]}, device '
        f'{device}, {torch.get_num_threads()} CPU threads'
    ]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if not comparing:
            if args.compile:
                compile_model(model, args.backbone_only, **compile_kw)
            run = build_runner(
                model, task, shape, args.batch_size, args.backbone_only, args.mode, device
            )
            res = benchmark_callable(
                run,
                args.batch_size,
                args.repeat,
                args.warmup,
                device,
                measure_memory=not args.no_memory,
            )
        else:
            if args.compare_compile:
                names = ('eager', 'compiled')
                if args.compile:
                    raise SystemExit(
                        'error: --compare-compile already compiles side B; drop --compile'
                    )
                other = compiled_copy(model, args.backbone_only, **compile_kw)
            else:
                names = (args.config, args.compare_config)
                other, _ = _build(args.compare_config, args, task)
                if args.compile:
                    compile_model(model, args.backbone_only, **compile_kw)
                    compile_model(other, args.backbone_only, **compile_kw)
            torch.manual_seed(0)
            run_a = build_runner(
                model, task, shape, args.batch_size, args.backbone_only, args.mode, device
            )
            torch.manual_seed(0)  # same random input on both sides
            run_b = build_runner(
                other, task, shape, args.batch_size, args.backbone_only, args.mode, device
            )
            diff = None
            if args.mode != 'train':
                diff = max_abs_diff(run_a(), run_b())
            res = compare_callables(
                dict(zip(names, (run_a, run_b))),
                args.batch_size,
                args.rounds,
                args.repeat,
                args.warmup,
                device,
                measure_memory=not args.no_memory,
            )
            res['max_abs_diff'] = diff
    print('=' * 40)
    print(f'Config:     {args.config}')
    print(head[0])
    if not comparing:
        t = res['time']
        print(
            f'Time/batch: median {_ms(t["median"])} (IQR {t["q1"] * 1e3:.1f}-'
            f'{t["q3"] * 1e3:.1f}, min {t["min"] * 1e3:.1f}, max {t["max"] * 1e3:.1f}) '
            f'over {t["runs"]} runs after {args.warmup} warm-up'
        )
        print(
            f'Throughput: {res["fps_median"]:.2f} img/s (range {res["fps_min"]:.2f}-'
            f'{res["fps_max"]:.2f})'
        )
        if res['peak_mem_bytes'] is not None:
            print(
                f'Peak mem:   {res["peak_mem_bytes"] / 2**20:.1f} MiB during one batch '
                f'({"max_memory_allocated" if device.type == "cuda" else "profiler"})'
            )
    else:
        print(
            f'Comparison: A = {names[0]}, B = {names[1]}; {args.rounds} alternating rounds '
            f'of {args.repeat} runs per side after {args.warmup} warm-up'
        )
        for side, name in zip('AB', names):
            r = res['sides'][name]
            mem = (
                ''
                if r['peak_mem_bytes'] is None
                else f', peak mem {r["peak_mem_bytes"] / 2**20:.1f} MiB'
            )
            print(
                f'  {side}: best round median {_ms(r["best"])} ({r["fps_best"]:.2f} img/s), '
                f'rounds {", ".join(_ms(t) for t in r["round_medians"])}, first call '
                f'{r["first_call_s"]:.1f} s{mem}'
            )
        print(
            f'Speed-up B/A: {res["speedup"]:.2f}x (per round: '
            f'{", ".join(f"{s:.2f}" for s in res["speedup_rounds"])})'
        )
        if 'mem_ratio' in res:
            print(f'Memory B/A: {res["mem_ratio"]:.2f}')
        if res['max_abs_diff'] is not None:
            print(f'Outputs:    max |A - B| = {res["max_abs_diff"]:.3g}')
    print('=' * 40)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(
                dict(
                    res,
                    config=args.config,
                    shape=list(shape),
                    device=str(device),
                    backbone_only=args.backbone_only,
                    mode=args.mode,
                    compile=args.compile,
                    compare_compile=args.compare_compile,
                    compare_config=args.compare_config,
                ),
                f,
                indent=2,
            )


if __name__ == '__main__':
    with user_errors():
        main()
