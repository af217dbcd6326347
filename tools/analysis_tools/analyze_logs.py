"""Plot training loss and validation metric against iteration from MMEngine's scalars.json.

    python tools/analysis_tools/analyze_logs.py WORK_DIR [--out WORK_DIR/curves.png]
        [--losses loss loss_cls ...] [--metrics mIoU ...] [--title TEXT]

WORK_DIR is a ``tools/train.py`` work dir (the newest ``<timestamp>/vis_data/scalars.json``
under it is read) or a scalars.json file. Left panel: the losses (default: every key starting
with ``loss``; the total in bold); right panel: the validation metrics (default: COCO
``bbox_mAP``/``segm_mAP`` or ``mIoU``, whichever the log has). MMDetection's
``analyze_logs.py`` needs seaborn and groups records by epoch; the shapes recipes log by
iteration.
"""

import argparse
import glob
import json
import os
import os.path as osp
import sys

DEFAULT_METRICS = ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU')


def find_scalars(path: str) -> str:
    if osp.isfile(path):
        return path
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')), key=osp.getmtime)
    if not found:
        raise SystemExit(
            f'error: no */vis_data/scalars.json under {path}; pass the work dir of '
            f'a tools/train.py run (or the scalars.json file)'
        )
    return found[-1]


def read_scalars(path: str):
    """``(train, val)``: lists of the log's records, training ones and validation ones.

    A validation record's ``step`` becomes the iteration of the training record logged before
    it: MMEngine's LoggerHook writes the epoch there by default (``log_metric_by_epoch``), which
    is 0 in an iteration-based loop, so the metric curve would collapse onto one x.
    """
    train, val = [], []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if any(k.startswith('loss') for k in rec):
                train.append(rec)
            else:
                val.append(
                    dict(rec, step=max(rec.get('step', 0), train[-1]['step'] if train else 0))
                )
    return train, val


def plot(train, val, out: str, losses=None, metrics=None, title: str = '') -> dict:
    """Draw the two panels into ``out``; return ``{key: number of points}`` drawn."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    losses = losses or sorted(
        {k for r in train for k in r if k.startswith('loss')}, key=lambda k: (k != 'loss', k)
    )
    metrics = metrics or [m for m in DEFAULT_METRICS if any(m in r for r in val)]
    if not train:
        raise SystemExit('error: the log has no training records (keys starting with "loss")')
    drawn = {}
    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in losses:
        pts = [(r['step'], r[key]) for r in train if key in r]
        if pts:
            xs, ys = zip(*pts)
            ax_l.plot(xs, ys, label=key, linewidth=2.2 if key == 'loss' else 1.0)
            drawn[key] = len(pts)
    ax_l.set(xlabel='iteration', ylabel='loss', title='training loss')
    ax_l.legend(fontsize=8)
    ax_l.grid(alpha=0.3)
    for key in metrics:
        pts = [(r['step'], r[key]) for r in val if key in r]
        if pts:
            xs, ys = zip(*pts)
            ax_m.plot(xs, ys, marker='o', label=key)
            drawn[key] = len(pts)
    if not any(m in drawn for m in metrics):
        ax_m.text(0.5, 0.5, 'no validation records', ha='center', transform=ax_m.transAxes)
    ax_m.set(xlabel='iteration', ylabel='metric', title='validation')
    ax_m.legend(fontsize=8)
    ax_m.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return drawn


def main(argv=None):
    parser = argparse.ArgumentParser(description='Plot loss and validation curves')
    parser.add_argument('work_dir', help='tools/train.py work dir, or a scalars.json file')
    parser.add_argument('--out', help='picture path (default: WORK_DIR/curves.png)')
    parser.add_argument('--losses', nargs='+', help='loss keys (default: all loss* keys)')
    parser.add_argument('--metrics', nargs='+', help='validation keys (default: mAP / mIoU)')
    parser.add_argument('--title', default='', help='figure title')
    args = parser.parse_args(argv)
    scalars = find_scalars(args.work_dir)
    out = args.out or osp.join(
        args.work_dir if osp.isdir(args.work_dir) else osp.dirname(scalars), 'curves.png'
    )
    train, val = read_scalars(scalars)
    drawn = plot(train, val, out, args.losses, args.metrics, args.title)
    print(f'{out}: ' + ', '.join(f'{k} ({n} points)' for k, n in drawn.items()))
    return out


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
