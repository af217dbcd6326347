"""The evidence table of docs/plugins.md: a detector with and without attention in its neck.

Trains every config (by default RTMDet-tiny on the bundled shapes data, plain and with each
op family's plug-ins in the neck) for each seed through ``tools/train.py`` (its own schedule;
it validates once, at the end), and tabulates bbox mAP (mean and spread over the seeds),
parameters and FLOPs at the config's image size, and the CPU time of a training iteration
(process time of one thread, measured in this process, so other load on the machine does not
count).

    OMP_NUM_THREADS=1 python tools/analysis_tools/plugin_table.py [CONFIG ...]
        [--seeds 0 1 2] [--iters N] [--work-dir work_dirs/plugin_table] [--json OUT]
    python tools/analysis_tools/plugin_table.py --table RESULTS.json ... [--out OUT.md]

Runs resume: a (config, seed) whose result is already in ``--json`` is not trained again, so
a sweep cut short continues where it stopped; a run whose work dir already holds the final
validation (e.g. one whose driver was stopped) is read, not repeated. Seeds may run in
separate processes (one ``--json`` each); ``--table A.json B.json ...`` merges them.
"""

import argparse
import glob
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
import warnings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

OPS = ('agent', 'bra', 'ea', 'flatten', 'shunted')
DEFAULT_CONFIGS = ['configs/shapes/rtmdet-tiny_shapes.py'] + [
    f'configs/shapes/rtmdet-tiny_{op}-neck_shapes.py' for op in OPS
]


def _last_val_metrics(work_dir: str) -> dict:
    """The last validation record MMEngine logged in ``work_dir`` (``vis_data/scalars.json``)."""
    found = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'coco/bbox_mAP' in rec:
                    found = rec
    return found


def _iter_times(work_dir: str) -> list:
    """Seconds per training iteration, as logged (each a mean over a logging window)."""
    times = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            times += [json.loads(line)['time'] for line in f if '"loss"' in line]
    return times


def schedule_options(iters: int) -> list:
    """``--cfg-options`` that shorten the shapes twins' schedule (warm-up 30, cosine to the
    end, one validation at the end) to ``iters`` iterations."""
    return [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'param_scheduler.1.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
    ]


def finished_run(config: str, seed: int, work_dir: str, iters: int):
    """The row of a run already trained in ``work_dir`` for ``iters`` iterations, or None.

    Its final validation is read; if it has none (the run stopped while validating), its last
    checkpoint is tested with ``tools/test.py``.
    """
    metrics = _last_val_metrics(work_dir)
    ckpt = osp.join(work_dir, f'iter_{iters}.pth')
    if metrics.get('step') != iters and osp.isfile(ckpt):
        test_dir = osp.join(work_dir, 'test')
        subprocess.run(
            [
                sys.executable,
                osp.join(REPO, 'tools', 'test.py'),
                config,
                ckpt,
                '--work-dir',
                test_dir,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        with open(osp.join(test_dir, 'metrics.json')) as f:
            metrics = dict(json.load(f), step=iters)
    if metrics.get('step') != iters:
        return None
    return dict(
        config=config,
        seed=seed,
        bbox_mAP=metrics.get('coco/bbox_mAP'),
        bbox_mAP_50=metrics.get('coco/bbox_mAP_50'),
        iter_s=None,
        cpu_s=None,
        wall_s=None,
    )


def train_once(config: str, seed: int, work_dir: str, options=()) -> dict:
    """One ``tools/train.py`` run; returns its bbox mAP and its CPU and wall time."""
    start = time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'),
            config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            f'randomness.seed={seed}',
            *options,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.time() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f'{config} seed {seed} failed:\n{proc.stderr[-3000:]}')
    metrics = _last_val_metrics(work_dir)
    times = _iter_times(work_dir)
    return dict(
        config=config,
        seed=seed,
        bbox_mAP=metrics.get('coco/bbox_mAP'),
        bbox_mAP_50=metrics.get('coco/bbox_mAP_50'),
        iter_s=statistics.median(times[1:] or times) if times else None,
        cpu_s=round(cpu, 1),
        wall_s=round(wall, 1),
    )


def cpu_per_iter(config: str, iters: int = 10, warmup: int = 2) -> float:
    """CPU seconds (this process, one thread) of one training iteration of ``config``'s model
    on a batch of its training data: forward, loss, backward and the optimiser step. Process
    time, so other load on the machine does not count."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.utils import import_modules_from_strings

    torch.set_num_threads(1)
    cfg = Config.fromfile(osp.join(REPO, config))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    from mmdet.registry import DATASETS, MODELS

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    model.init_weights()
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = dict(inputs=[], data_samples=[])
    for i in range(cfg.train_dataloader.batch_size):
        item = dataset[i]
        batch['inputs'].append(item['inputs'])
        batch['data_samples'].append(item['data_samples'])
    spent = []
    for step in range(warmup + iters):
        start = time.process_time()
        data = model.data_preprocessor(batch, training=True)
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
        spent.append(time.process_time() - start)
    return statistics.median(spent[warmup:])


def complexity(config: str) -> dict:
    """Params and FLOPs of the whole detector at the config's training image size."""
    from mmengine.config import Config

    from mmattn.analysis.flops import config_complexity

    cfg = Config.fromfile(osp.join(REPO, config))
    side = cfg.get('img_scale', (128, 128))
    res = config_complexity(cfg, shape=(side[1], side[0]))
    return dict(
        params=res['params'],
        flops=res['flops'],
        shape=list(res['shape']),
        cpu_iter_s=cpu_per_iter(config),
    )


def _mean_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (max(values) - min(values)) / 2


def format_table(rows: list, info: dict) -> str:
    """Markdown: one line per config (``info`` order, the first is the baseline)."""
    from mmattn.analysis.flops import format_count

    lines = [
        '| config | plug-in op | bbox mAP, mean +- half range | per seed | AP50, mean | '
        'params | FLOPs | CPU s / train iter |',
        '|---|---|---|---|---|---|---|---|',
    ]
    base = None
    for config, c in info.items():
        runs = sorted((r for r in rows if r['config'] == config), key=lambda r: r['seed'])
        maps = [r['bbox_mAP'] for r in runs]
        mean, spread = _mean_spread(maps)
        ap50, _ = _mean_spread([r['bbox_mAP_50'] for r in runs])
        base = base or c
        name = osp.basename(config)[:-3]
        op = name.split('_')[1].replace('-neck', '') if '-neck' in name else '(none)'
        extra = c['params'] - base['params']
        lines.append(
            f'| `{name}` | {op} | '
            f'{"-" if mean is None else f"{mean:.3f}"}'
            f'{f" +- {spread:.3f}" if len(maps) > 1 else " (one seed)"} | '
            f'{", ".join(f"{m:.3f}" for m in maps if m is not None)} (seeds '
            f'{", ".join(str(r["seed"]) for r in runs)}) | '
            f'{"-" if ap50 is None else f"{ap50:.3f}"} | '
            f'{format_count(c["params"])}{f" (+{format_count(extra)})" if extra else ""} | '
            f'{format_count(c["flops"])} | {c["cpu_iter_s"]:.3f} |'
        )
    return '\n'.join(lines)


def _load(path: str) -> dict:
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    return dict(rows=[])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='*', default=DEFAULT_CONFIGS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--iters', type=int, help="train this many iterations instead of the configs' own schedule"
    )
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'plugin_table'))
    parser.add_argument('--json', default=None, help='results file (default: in --work-dir)')
    parser.add_argument(
        '--table',
        nargs='*',
        metavar='JSON',
        help='train nothing: tabulate these results files (default: --json) '
        'with the params and FLOPs of the configs',
    )
    parser.add_argument('--out', help='also write the markdown table here')
    args = parser.parse_args(argv)
    out_json = args.json or osp.join(args.work_dir, 'results.json')
    if args.table is not None:
        rows = [r for path in (args.table or [out_json]) for r in _load(path)['rows']]
        # params, FLOPs and CPU time per iteration, cached beside the results
        info_json = osp.join(args.work_dir, 'complexity.json')
        info = _load(info_json).get('info', {})
        for config in args.configs:
            if config not in info:
                info[config] = complexity(config)
                os.makedirs(args.work_dir, exist_ok=True)
                with open(info_json, 'w') as f:
                    json.dump(dict(info=info), f, indent=1)
        table = format_table(rows, {c: info[c] for c in args.configs})
        print(table)
        if args.out:
            with open(args.out, 'w') as f:
                f.write(table + '\n')
        return 0

    os.makedirs(args.work_dir, exist_ok=True)
    state = _load(out_json)
    for seed in args.seeds:  # seed-major: a sweep cut short has every config at least once
        for config in args.configs:
            if any(r['config'] == config and r['seed'] == seed for r in state['rows']):
                continue
            name = osp.basename(config)[:-3]
            work_dir = osp.join(args.work_dir, f'{name}_seed{seed}')
            row = finished_run(config, seed, work_dir, args.iters) if args.iters else None
            row = row or train_once(
                config, seed, work_dir, schedule_options(args.iters) if args.iters else ()
            )
            row['iters'] = args.iters
            state['rows'].append(row)
            with open(out_json + '.tmp', 'w') as f:
                json.dump(state, f, indent=1)
            os.replace(out_json + '.tmp', out_json)
            print(
                f'{name} seed {seed}: bbox mAP {row["bbox_mAP"]}, {row["cpu_s"]} CPU s, '
                f'{row["wall_s"]} s wall',
                flush=True,
            )
    return 0


if __name__ == '__main__':
    sys.exit(main())
