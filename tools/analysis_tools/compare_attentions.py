"""The controlled comparison: one skeleton, one recipe, seven attention ops.

For each op of ``configs/comparison/`` (softmax spatial reduction as the baseline, Agent,
FLatten, Shunted, External, BRA, CSWin) this measures, on this machine:

* the PVT-S-sized backbone (``fpn_pvt-s-<op>_...``): parameters, FLOPs at ``--shape``
  (mmattn's counter, attention products included), CPU inference time and peak tensor memory at
  that size. Times are taken in round-robin rounds over the ops (op order rotated each round),
  so a change of load on a shared machine hits every op alike; the table gives the median.
* the CPU-sized Semantic FPN on the bundled shapes data (``fpn_pvt-nano-<op>_shapes``): mIoU
  and the mean IoU of the three shape classes after the same short schedule, trained and tested
  through ``tools/train.py`` / ``tools/test.py`` as a user would (``--skip-train`` leaves it out).

    python tools/analysis_tools/compare_attentions.py [--ops sra agent ...] [--shape 512 512]
        [--rounds 3] [--iters 400] [--threads 2] [--out docs/comparison.md]

A newly registered op joins the comparison by adding ``configs/comparison/_base_/ops_<name>.py``
and the three sibling configs (see docs/adding_an_attention.md).
"""

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
import warnings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

OPS = ('sra', 'agent', 'flatten', 'shunted', 'external', 'bra', 'cswin')
NAMES = dict(
    sra='Spatial-reduction (PVT, baseline)',
    agent='Agent',
    flatten='Focused linear',
    shunted='Shunted',
    external='External (multi-head)',
    bra='Bi-level routing',
    cswin='Cross-shaped window (CSWin)',
)
DENSE = 'configs/comparison/fpn_pvt-s-{}_8xb2-40k_ade20k-512x512.py'
SHAPES = 'configs/comparison/fpn_pvt-nano-{}_shapes.py'


def measure_backbones(ops, shape, rounds: int, warmup: int = 1) -> dict:
    """Params, FLOPs, median inference seconds and peak memory of each op's dense backbone."""
    import torch
    from mmengine.config import Config

    from mmattn.analysis.benchmark import model_runner, peak_memory
    from mmattn.analysis.flops import build_model_from_cfg, count_flops

    results, runners = {}, {}
    for op in ops:
        cfg = Config.fromfile(osp.join(REPO, DENSE.format(op)))
        model = build_model_from_cfg(cfg, backbone_only=True)
        res = count_flops(model, (torch.randn(1, 3, *shape),))
        runners[op] = model_runner(model, 'seg', shape, backbone_only=True)
        for _ in range(warmup):
            runners[op]()
        results[op] = dict(
            params=res.params, flops=res.flops, peak_mem_bytes=peak_memory(runners[op]), times=[]
        )
    for r in range(rounds):
        order = list(ops[r % len(ops) :]) + list(ops[: r % len(ops)])
        for op in order:
            start = time.perf_counter()
            runners[op]()
            results[op]['times'].append(time.perf_counter() - start)
    for op in ops:
        times = sorted(results[op]['times'])
        results[op]['seconds'] = times[len(times) // 2]
    return results


def train_and_test(op: str, work_root: str, iters: int) -> dict:
    """Train the shapes config of ``op`` for ``iters`` iterations, test it, return metrics."""
    config = osp.join(REPO, SHAPES.format(op))
    work = osp.join(work_root, op)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.time()
    train = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'),
            config,
            '--work-dir',
            work,
            '--cfg-options',
            f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}',
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if train.returncode != 0:
        raise RuntimeError(f'training {config} failed:\n{train.stderr[-2000:]}')
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    test = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'test.py'),
            config,
            ckpt,
            '--work-dir',
            osp.join(work, 'test'),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if test.returncode != 0:
        raise RuntimeError(f'testing {config} failed:\n{test.stderr[-2000:]}')
    with open(osp.join(work, 'test', 'metrics.json')) as f:
        metrics = json.load(f)
    metrics['train_test_seconds'] = time.time() - start
    metrics['shape_iou'] = _shape_class_iou(work)
    return metrics


def _shape_class_iou(work: str):
    """Mean IoU of the three shape classes (not 'background'), read from the test log."""
    import glob
    import re

    logs = sorted(glob.glob(osp.join(work, 'test', '*', '*.log')))
    if not logs:
        return None
    with open(logs[-1]) as f:
        text = f.read()
    ious = [
        float(m.group(2))
        for m in re.finditer(r'\|\s*(circle|rectangle|triangle)\s*\|\s*([0-9.]+|nan)\s*\|', text)
        if m.group(2) != 'nan'
    ]
    return sum(ious) / len(ious) if len(ious) == 3 else None


def render(backbones: dict, seg: dict, args, wall: float) -> str:
    base = backbones.get('sra')
    lines = [
        '| op | params | FLOPs | CPU time (s) | vs SRA | peak memory (MiB) | shapes mIoU | '
        'shape-class IoU |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for op, b in backbones.items():
        s = seg.get(op, {})
        ratio = f'{b["seconds"] / base["seconds"]:.2f}x' if base else '-'
        miou = f'{s["mIoU"]:.1f}' if 'mIoU' in s else '-'
        shape_iou = f'{s["shape_iou"]:.1f}' if s.get('shape_iou') is not None else '-'
        lines.append(
            f'| {NAMES.get(op, op)} | {b["params"] / 1e6:.2f}M | '
            f'{b["flops"] / 1e9:.2f}G | {b["seconds"]:.3f} | {ratio} | '
            f'{b["peak_mem_bytes"] / 2**20:.0f} | {miou} | {shape_iou} |'
        )
    import torch

    cmd = 'python tools/analysis_tools/compare_attentions.py ' + ' '.join(sys.argv[1:])
    return '\n'.join(
        [
            '# Controlled comparison of the attention ops',
            '',
            'One PVT-S-sized skeleton (`configs/comparison/_base_/pvt-s_skeleton.py`) and one '
            'recipe; the configs differ only in the op (`configs/comparison/_base_/ops_*.py`). '
            f'Backbone columns: input {args.shape[0]}x{args.shape[1]}, batch 1, eval, fp32, '
            f'{torch.get_num_threads()} threads, median of {args.rounds} round-robin rounds; FLOPs '
            'count multiply-adds including the attention products; memory is the peak of tensor '
            'allocations during one forward (weights excluded). Shapes columns: Semantic FPN with '
            'the CPU-sized skeleton (`fpn_pvt-nano-<op>_shapes.py`), trained from scratch for '
            f'{args.iters} iterations and tested on the bundled val split (mIoU over the 4 '
            'classes; shape-class IoU = mean over circle, rectangle, triangle, which a model '
            'predicting background everywhere scores 0 on).',
            '',
            *lines,
            '',
            f'Made by `{cmd}` on {os.cpu_count()} CPU cores ({wall / 60:.0f} min). The machine is '
            'shared: times are comparable within this table only.',
            '',
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ops', nargs='+', default=list(OPS), choices=OPS)
    parser.add_argument('--shape', nargs=2, type=int, default=[512, 512])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument(
        '--iters',
        type=int,
        default=400,
        help='training iterations of the shapes configs (their schedule)',
    )
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-train', action='store_true')
    parser.add_argument('--work-dir', default='work_dirs/comparison')
    parser.add_argument('--out', help='write the markdown table here (e.g. docs/comparison.md)')
    args = parser.parse_args(argv)

    import torch

    from mmattn.utils.atomic import atomic_write

    torch.set_num_threads(args.threads)
    start = time.time()
    backbones = measure_backbones(args.ops, tuple(args.shape), args.rounds)
    seg = {}
    if not args.skip_train:
        from mmattn.datasets.shapes import make_shapes_ade

        make_shapes_ade(osp.join(REPO, 'data', 'shapes_ade'))
        for op in args.ops:
            seg[op] = train_and_test(op, osp.abspath(args.work_dir), args.iters)
            print(f'{op}: mIoU {seg[op]["mIoU"]:.2f}', flush=True)
    text = render(backbones, seg, args, time.time() - start)
    print(text)
    if args.out:
        atomic_write(args.out, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
